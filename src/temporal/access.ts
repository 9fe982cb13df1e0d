import { readFileSync } from 'node:fs';
import { Client, Connection, type TLSConfig, type WorkflowClientInterceptor } from '@temporalio/client';
import type { DataConverter } from '@temporalio/common';
import { ConfigError, temporalTlsEnabled, type Config } from '../config';
import { payloadCodecFrom, type CodecSetup } from './codec';
import { temporalSettings, type TemporalSettings } from './settings';

/**
 * How every pveflow process reaches Temporal: where it is, how it proves who it is (TLS, a client certificate, an API
 * key), and the one data converter they all share. The API (embedded or alone), the workers, the tools, the benches
 * and the tests take their connections, their client and their worker's converter from here, so what one process
 * writes every other one reads, none of them forgets the codec, and none of them reaches Temporal without the
 * credentials the others use.
 */
export interface TemporalAccess {
  settings: TemporalSettings;
  /**
   * What a connection is opened with, for `Connection.connect` (clients) and `NativeConnection.connect` (workers)
   * alike. It holds the client key and the API key: never log it; `security` says what it is in words.
   */
  connection: TemporalConnectionOptions;
  /** `mTLS`, `TLS + API key`, `TLS` or `plaintext`: for a start-up log line. */
  security: string;
  /** The payload codec from PVEFLOW_CODEC_KEYS / PVEFLOW_CODEC_KEY_FILE; undefined only where none is configured. */
  codec?: CodecSetup;
  dataConverter: DataConverter;
}

export interface TemporalAccessOptions {
  /** The embedded default passes its data directory: a key file is generated there on first start when none is given. */
  generateKeysUnder?: string;
}

/** The options both of the SDK's connections take: the address, TLS (false: plaintext) and an API key. */
export interface TemporalConnectionOptions {
  address: string;
  tls: TLSConfig | false;
  apiKey?: string;
}

export function temporalAccessFrom(config: Config, opts: TemporalAccessOptions = {}): TemporalAccess {
  const codec = payloadCodecFrom({ keys: config.PVEFLOW_CODEC_KEYS, keyFile: config.PVEFLOW_CODEC_KEY_FILE }, { generateUnder: opts.generateKeysUnder });
  const settings = temporalSettings(config);
  const connection = connectionOptionsFrom(config, settings.address);
  return { settings, connection, security: securityOf(connection), codec, dataConverter: dataConverterFor(codec) };
}

/** The certificates and keys are read once, at start-up: a renewed one is picked up by a restart. */
function connectionOptionsFrom(config: Config, address: string): TemporalConnectionOptions {
  const apiKey = config.TEMPORAL_API_KEY ?? (config.TEMPORAL_API_KEY_FILE ? readSetting('TEMPORAL_API_KEY_FILE', config.TEMPORAL_API_KEY_FILE).toString('utf8').trim() : undefined);
  if (apiKey === '') throw new ConfigError(`TEMPORAL_API_KEY_FILE ${config.TEMPORAL_API_KEY_FILE} is empty`);
  if (!temporalTlsEnabled(config)) return { address, tls: false };
  const tls: TLSConfig = {
    ...(config.TEMPORAL_TLS_SERVER_NAME ? { serverNameOverride: config.TEMPORAL_TLS_SERVER_NAME } : {}),
    ...(config.TEMPORAL_TLS_SERVER_CA_CERT_PATH ? { serverRootCACertificate: readSetting('TEMPORAL_TLS_SERVER_CA_CERT_PATH', config.TEMPORAL_TLS_SERVER_CA_CERT_PATH) } : {}),
    ...(config.TEMPORAL_TLS_CLIENT_CERT_PATH && config.TEMPORAL_TLS_CLIENT_KEY_PATH
      ? { clientCertPair: { crt: readSetting('TEMPORAL_TLS_CLIENT_CERT_PATH', config.TEMPORAL_TLS_CLIENT_CERT_PATH), key: readSetting('TEMPORAL_TLS_CLIENT_KEY_PATH', config.TEMPORAL_TLS_CLIENT_KEY_PATH) } }
      : {}),
  };
  return { address, tls, ...(apiKey ? { apiKey } : {}) };
}

/** A file a setting names; what fails says the setting and the path, never the content. */
function readSetting(name: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new ConfigError(`${name}: cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
}

function securityOf(connection: TemporalConnectionOptions): string {
  if (!connection.tls) return 'plaintext';
  if (connection.tls.clientCertPair) return connection.apiKey ? 'mTLS + API key' : 'mTLS';
  return connection.apiKey ? 'TLS + API key' : 'TLS';
}

/** What no log line may show: the API key (the client key is a PEM, which the logger cuts out by its shape). */
export function temporalSecrets(access: TemporalAccess): string[] {
  return access.connection.apiKey ? [access.connection.apiKey] : [];
}

/** A client connection to Temporal, opened now, with this process's credentials. */
export function connectToTemporal(access: TemporalAccess): Promise<Connection> {
  return Connection.connect({ ...access.connection });
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
    connection: opts.connection ?? Connection.lazy({ ...access.connection }),
    namespace: access.settings.namespace,
    dataConverter: access.dataConverter,
    ...(opts.interceptors ? { interceptors: { workflow: opts.interceptors } } : {}),
  });
}
