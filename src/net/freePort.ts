import { createServer } from 'node:net';
import { listenOn } from './listenOn';

/**
 * A port free on 127.0.0.1 right now (for servers that cannot be told to pick one themselves). Free *now*: anyone may
 * bind it before its user does, so a server that can take port 0 is given 0 instead.
 */
export async function freePort(): Promise<number> {
  const probe = createServer();
  const port = await listenOn(probe, '127.0.0.1', 0, { what: 'the probe for a free port' });
  await new Promise<void>((closed) => probe.close(() => closed()));
  return port;
}
