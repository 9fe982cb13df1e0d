/**
 * A guest's logins (the seeds' `arrow_pw`, `root_pw`): generated per build, held only in encrypted workflow state,
 * shown once to one of the request's consultants.
 */
export interface GuestCredentials {
  username: string;
  password: string;
  rootPassword: string;
}

/**
 * A guest's logins as they travel through Temporal: AES-256-GCM under a data key of their request that never enters a
 * payload (src/credentials/credentialKeys.ts). Plain JSON, so it crosses workflow state, results and update answers.
 */
export interface SealedCredentials {
  keyId: string;
  iv: string;
  ciphertext: string;
  tag: string;
}
