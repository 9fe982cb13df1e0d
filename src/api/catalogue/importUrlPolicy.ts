import { isIP } from 'node:net';

/**
 * Which URLs an image import may hand to a Proxmox node. The node fetches it, with the node's network: a URL on
 * loopback or link-local reaches the node itself or a metadata service, never an image an operator meant. Those are
 * refused in production unless PVEFLOW_IMAGE_URLS_ALLOW_LOCAL=true (the tests serve their image on 127.0.0.1). A host
 * name is judged as written: what it resolves to is the node's business (Proxmox resolves it).
 */
export function importUrlRefusal(raw: string, opts: { refuseLocal: boolean }): string | undefined {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return 'not a URL';
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return `only http and https URLs are downloaded, not ${url.protocol.replace(/:$/, '')}`;
  if (url.username || url.password) return "a URL with credentials would be stored in the import's history in clear: serve the image without them";
  if (opts.refuseLocal && isLocalHost(url.hostname)) return `${url.hostname} is a loopback or link-local address, refused in production (set PVEFLOW_IMAGE_URLS_ALLOW_LOCAL=true to allow it)`;
  return undefined;
}

function isLocalHost(hostname: string): boolean {
  const host = hostname.replace(/^\[|\]$/g, '').toLowerCase();
  if (host === 'localhost' || host.endsWith('.localhost')) return true;
  if (isIP(host) === 4) return /^127\./.test(host) || /^169\.254\./.test(host) || host === '0.0.0.0';
  if (isIP(host) === 6) return host === '::1' || host === '::' || /^fe[89ab][0-9a-f]:/.test(host) || /^::ffff:(127\.|169\.254\.)/.test(host);
  return false;
}
