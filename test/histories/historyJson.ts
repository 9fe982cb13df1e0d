import { createRequire } from 'node:module';
import * as proto from '@temporalio/proto';
import { patchProtobufRoot } from '@temporalio/proto/lib/patch-protobuf-root';

/**
 * History <-> the JSON Temporal's tools write (`temporal workflow show -o json`, the SDK's `historyToJSON`).
 *
 * Why not the SDK's own historyToJSON/historyFromJSON: with this install @temporalio/common and @temporalio/proto each
 * carry their own copy of protobufjs, and protobufjs's protojson refuses a message type made by the other copy
 * ("type must be a Type"). So we use the protojson of the very copy @temporalio/proto built its types with.
 * The output is the same canonical proto3 JSON, which `temporal` and every SDK's replayer read.
 */
type ProtoJson = { toJson(type: unknown, message: unknown): unknown; fromJson(type: unknown, json: unknown, opts?: { ignoreUnknownFields?: boolean }): unknown };
const protojson = createRequire(require.resolve('@temporalio/proto'))('protobufjs/ext/protojson') as ProtoJson;
const historyType = (patchProtobufRoot(proto) as unknown as { lookupType(name: string): unknown }).lookupType('temporal.api.history.v1.History');

export type History = proto.temporal.api.history.v1.IHistory;

export function historyToJson(history: History): string {
  const message = proto.temporal.api.history.v1.History.fromObject(history);
  return JSON.stringify(protojson.toJson(historyType, message), null, 2);
}

export function historyFromJson(json: string): History {
  // Unknown fields (a newer server's) are tolerated, as the SDK does: replay only needs the ones it knows.
  const history = protojson.fromJson(historyType, JSON.parse(json), { ignoreUnknownFields: true });
  if (!history) throw new Error('not a Temporal history');
  return history as History;
}
