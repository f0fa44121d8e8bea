/**
 * Write `data` to a stream in pieces of `pieceBytes`, one every `everyMs`, then end it: a slow
 * sender, for tests of rate limits and deadlines. Resolves once everything is written.
 */
export async function writeInPieces(
  out: { write(chunk: Uint8Array | string): unknown; end(): unknown },
  data: Uint8Array | string,
  pieceBytes: number,
  everyMs: number,
): Promise<void> {
  for (let off = 0; off < data.length; off += pieceBytes) {
    out.write(data.slice(off, off + pieceBytes));
    // A pause on purpose: the pace is what the test is about.
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
  out.end();
}
