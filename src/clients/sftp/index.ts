export { SftpClient, type SftpTarget } from './SftpClient';
export { SftpError, type SftpErrorKind } from './SftpError';
export { generateSshKeyPair, sshFingerprint, type SshKeyPair } from './keys';
