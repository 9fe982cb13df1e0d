import { Client, Connection, type WorkflowClientInterceptor } from '@temporalio/client';
import type { DataConverter } from '@temporalio/common';
import type { Config } from '../config';
import { payloadCodecFrom, type CodecSetup } from './codec';
import { temporalSettings, type TemporalSettings } from './settings';

/**
 * How every pveflow process reaches Temporal: where it is, and the one data converter they all share. The API (embedded
 * or alone), the workers, the tools, the benches and the tests take their client and their worker's converter from
 * here, so what one process writes every other one reads, and nothing of ours is written in clear by a process that
 * forgot the codec.
 */
export interface TemporalAccess {
  settings: TemporalSettings;
  /** The payload codec from PVEFLOW_CODEC_KEYS / PVEFLOW_CODEC_KEY_FILE; undefined only where none is configured. */
  codec?: CodecSetup;
  dataConverter: DataConverter;
}

export interface TemporalAccessOptions {
  /** The embedded default passes its data directory: a key file is generated there on first start when none is given. */
  generateKeysUnder?: string;
}

export function temporalAccessFrom(config: Config, opts: TemporalAccessOptions = {}): TemporalAccess {
  const codec = payloadCodecFrom({ keys: config.PVEFLOW_CODEC_KEYS, keyFile: config.PVEFLOW_CODEC_KEY_FILE }, { generateUnder: opts.generateKeysUnder });
  return { settings: temporalSettings(config), codec, dataConverter: dataConverterFor(codec) };
}

/** The data converter for a codec (or none): the only place a converter is assembled. */
export function dataConverterFor(codec: CodecSetup | undefined): DataConverter {
  return codec ? { payloadCodecs: [codec.codec] } : {};
}

export interface ClientOptions {
  /** An open connection; otherwise a lazy one that connects on first use. */
  connection?: Connection;
  interceptors?: WorkflowClientInterceptor[];
}

/** A Temporal client that reads and writes what every other pveflow process does. */
export function createTemporalClient(access: TemporalAccess, opts: ClientOptions = {}): Client {
  return new Client({
    connection: opts.connection ?? Connection.lazy({ address: access.settings.address }),
    namespace: access.settings.namespace,
    dataConverter: access.dataConverter,
    ...(opts.interceptors ? { interceptors: { workflow: opts.interceptors } } : {}),
  });
}
