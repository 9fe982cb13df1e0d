import { createServer, type Server } from 'node:http';
import { listenOn } from '../../net/listenOn';
import { createApp, type AppDeps } from '../app';
import { InFlightCalls } from './inFlightCalls';

export interface ServingApi {
  server: Server;
  port: number;
  /**
   * Stops in the order that lets the caller close the Temporal connection next: no new connection, the open ones
   * (log streams, keep-alive sockets) ended, so every stream's poller stops at its next look; then the Temporal
   * calls still in flight settled, new ones refused.
   */
  stop(): Promise<void>;
}

/** The API listening on host:port (0: any free port), with the stop that must come before the connection's close. */
export async function serveApi(deps: AppDeps, host: string, port: number): Promise<ServingApi> {
  const inFlight = deps.inFlight ?? new InFlightCalls();
  const app = createApp({ ...deps, inFlight });
  const server = createServer(app);
  const bound = await listenOn(server, host, port, { what: 'the API', portSetting: 'API_PORT' });
  return {
    server,
    port: bound,
    async stop() {
      const closed = new Promise<void>((ok) => server.close(() => ok()));
      // Log streams and keep-alive sockets would otherwise hold the close for ever.
      server.closeAllConnections();
      await inFlight.drain();
      await closed;
    },
  };
}
