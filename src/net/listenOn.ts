import type { AddressInfo, Server } from 'node:net';

/** Who listens, for the operator reading the error: what it is and the setting that moves it. */
export interface ListenPurpose {
  /** e.g. "the Temporal UI gateway". */
  what: string;
  /** The setting naming the port, e.g. "TEMPORAL_UI_PORT"; absent where the caller chose the port itself. */
  portSetting?: string;
}

/** A listen refused, with the address, the port and what the operator does about it in its message. */
export class ListenError extends Error {
  constructor(
    message: string,
    readonly code: string | undefined,
    readonly host: string,
    readonly port: number,
  ) {
    super(message);
    this.name = 'ListenError';
  }
}

/**
 * The server listening on host:port (0: a port the system picks), resolving to the port it is bound to once it is, or
 * rejecting with a ListenError naming the port and the way out. Express 5's `app.listen` calls its callback on an
 * 'error' as well as on 'listening', so a port taken between a `freePort()` and the bind looked like a success there
 * and `server.address()` was null: servers are created with `http.createServer(app)` and started here instead.
 */
export function listenOn(server: Server, host: string, port: number, purpose: ListenPurpose): Promise<number> {
  return new Promise((resolve, reject) => {
    const failed = (err: NodeJS.ErrnoException) => {
      server.off('listening', listening);
      reject(new ListenError(listenFailure(err, host, port, purpose), err.code, host, port));
    };
    // Read in the 'listening' event itself: nothing can have closed the server yet. The 'error' listener stays, as it
    // always did here: an accept failure later (EMFILE) is the server's 'error' too, and must not end the process.
    const listening = () => resolve((server.address() as AddressInfo).port);
    server.once('error', failed);
    server.once('listening', listening);
    server.listen(port, host);
  });
}

/** The operator's sentence for a refused listen: what could not listen where, why, and what to change. */
export function listenFailure(err: NodeJS.ErrnoException, host: string, port: number, purpose: ListenPurpose): string {
  const where = `${host.includes(':') ? `[${host}]` : host}:${port}`;
  const setting = purpose.portSetting ? `set ${purpose.portSetting} to a free port` : 'choose a free port';
  switch (err.code) {
    case 'EADDRINUSE':
      return `${purpose.what} cannot listen on ${where}: the port is in use; ${setting}, or stop what listens there`;
    case 'EACCES':
      return `${purpose.what} cannot listen on ${where}: not allowed to bind this port (ports below 1024 need privileges); ${setting}`;
    case 'EADDRNOTAVAIL':
      return `${purpose.what} cannot listen on ${where}: ${host} is not an address of this machine`;
    default:
      return `${purpose.what} cannot listen on ${where}: ${err.message}`;
  }
}
