/**
 * The piscina task for Splunk HEC bodies: gunzip, split and validate one request's body off
 * the main thread (hec-decode.ts does the work). A separate file from task.ts: it needs no
 * workerData, so one thread runs it for any number of splunk_hec sources.
 *
 * Never throws: failures are `{ ok: false, rejection: 'internal_error' }`.
 */
import { move, transferableSymbol, valueSymbol } from 'piscina';
import { decodeHecBody, ownBytes, type HecDecodeOptions, type HecDecodeResult } from './hec-decode.ts';

export interface HecDecodeTask {
  /** The body as received; its ArrayBuffer is transferred here, not copied. */
  body: Uint8Array;
  opts: HecDecodeOptions;
}

export default function decodeHecTask(task: HecDecodeTask): HecDecodeResult {
  const result = decodeHecBody(task.body, task.opts);
  if (!result.ok) return result;
  // Transfer, not clone, the records back: a 10 MiB body would otherwise be copied once more.
  const data = ownBytes(result.data);
  const out: HecDecodeResult = { ...result, data };
  const transfer = [data.buffer as ArrayBuffer, result.spans.buffer as ArrayBuffer];
  return move({ [transferableSymbol]: transfer, [valueSymbol]: out } as never) as unknown as HecDecodeResult;
}
