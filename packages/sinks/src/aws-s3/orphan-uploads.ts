import { AbortMultipartUploadCommand, ListMultipartUploadsCommand } from '@aws-sdk/client-s3';
import type { S3Store } from './s3-store.ts';

/**
 * Abort every incomplete multipart upload of exactly `key` (an object an earlier run had in
 * flight when it died; its data is sent again from the spool). Only keys this process's spool
 * names: replicas may share a key_prefix, and their uploads in flight must not be touched.
 * Resolves the number aborted.
 */
export async function abortIncompleteUploads(store: S3Store, key: string): Promise<number> {
  let aborted = 0;
  let keyMarker: string | undefined;
  let uploadIdMarker: string | undefined;
  for (;;) {
    const res = await store.client.send(
      new ListMultipartUploadsCommand({
        Bucket: store.bucket,
        Prefix: key,
        KeyMarker: keyMarker,
        UploadIdMarker: uploadIdMarker,
      }),
    );
    for (const u of res.Uploads ?? []) {
      if (u.Key !== key || u.UploadId === undefined) continue;
      await store.client.send(
        new AbortMultipartUploadCommand({ Bucket: store.bucket, Key: key, UploadId: u.UploadId }),
      );
      aborted++;
    }
    if (res.IsTruncated !== true) return aborted;
    keyMarker = res.NextKeyMarker;
    uploadIdMarker = res.NextUploadIdMarker;
  }
}
