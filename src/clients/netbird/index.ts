export { NetbirdClient, type NetbirdClientOptions } from './NetbirdClient';
export { NetbirdApiError, isRetryableStatus } from './NetbirdApiError';
export { DEFAULT_RETRY, type RetryPolicy } from './retry';
export type { GroupRequest, NetbirdAccount, NetbirdGroup, NetbirdPeer, NetbirdPolicy, NetbirdSetupKey, NetbirdUser, PeerUpdate, PolicyRequest, PolicyRuleRequest, SetupKeyCreate, UserUpdate } from './schemas';
