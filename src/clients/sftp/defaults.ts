/** Bound on one SFTP call, handshake included, when the caller names none (SSH_TIMEOUT_MS's default). */
export const sftpDefaultTimeoutMs = 15_000;
