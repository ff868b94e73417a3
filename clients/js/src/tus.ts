// The HTTP path of uploads: options for tus-js-client (or Uppy's Tus
// plugin) that point it at a Ferry node's tus endpoint with the metadata
// Ferry requires. tus-js-client is an optional peer dependency: import it
// yourself and pass these options to new tus.Upload(file, ...).
//
//   import * as tus from "tus-js-client";
//   import { tusUploadOptions } from "@ferry/client/tus";
//   new tus.Upload(file, { ...tusUploadOptions({ url, token, name: file.name, sha256 }), onProgress }).start();
//
// An upload begun this way can be finished with Client.upload (same name,
// size and sha256) and the other way round (uploadUrl: url + "/v1/uploads/" + id).

/** What tusUploadOptions needs. */
export interface TusTarget {
  /** The node's base URL, e.g. "https://rt.example.com". */
  url: string;
  /** The connection token; it goes in the Authorization header, never in the URL. */
  token: string;
  /** The file's name. */
  name: string;
  /** The file's sha256 in hex (sha256Hex computes it). */
  sha256: string;
  /** An upload to continue (its id, from upload.ready or a previous upload). */
  upload?: string;
}

/** Options for tus-js-client's Upload: endpoint (or uploadUrl), headers, metadata. */
export function tusUploadOptions(t: TusTarget): { endpoint: string; uploadUrl?: string; headers: Record<string, string>; metadata: Record<string, string> } {
  if (!t.token) throw new TypeError("ferry: tus: a token is required");
  if (!/^[0-9a-f]{64}$/.test(t.sha256)) throw new TypeError("ferry: tus: sha256 must be 64 lower-case hex digits");
  const base = t.url.replace(/\/+$/, "");
  const o: { endpoint: string; uploadUrl?: string; headers: Record<string, string>; metadata: Record<string, string> } = {
    endpoint: base + "/v1/uploads/",
    headers: { Authorization: `Bearer ${t.token}` },
    metadata: { filename: t.name, sha256: t.sha256 },
  };
  if (t.upload) o.uploadUrl = `${base}/v1/uploads/${encodeURIComponent(t.upload)}`;
  return o;
}
