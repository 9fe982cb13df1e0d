import assert from 'node:assert/strict';
import { request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, test } from 'node:test';
import express, { type Response } from 'express';
import { EventStream } from '../src/api/reads/sse';

/**
 * The event stream under a log stream's poller: the poller polls Temporal for as long as the stream is open, so the
 * stream must know when its client is gone, also when the client left before the stream was opened (while the
 * route took its first look at Temporal).
 */
describe('EventStream', () => {
  test('a stream whose client left before it opened is closed from the start: its poller stops at once', async () => {
    let left!: (res: Response) => void;
    const clientGone = new Promise<Response>((ok) => (left = ok));
    const app = express();
    app.get('/logs', (_req, res) => void res.once('close', () => left(res)));
    const server = await new Promise<Server>((ok) => {
      const s = app.listen(0, '127.0.0.1', () => ok(s));
    });
    try {
      const asking = request({ host: '127.0.0.1', port: (server.address() as AddressInfo).port, path: '/logs' });
      asking.on('error', () => {}); // we hang up ourselves
      asking.end();
      // Gone before the route had answered anything.
      server.once('request', () => asking.destroy());
      const res = await clientGone;

      const stream = new EventStream(res, 60_000);
      assert.equal(stream.closed, true, 'a stream nobody reads must not be polled');
      // Its poller's wait between looks ends at once rather than after the poll interval.
      await stream.sleep(3_600_000);
    } finally {
      server.closeAllConnections();
      await new Promise((ok) => server.close(ok));
    }
  });
});
