export { createSftpServer, type RunningSftpServer, type SftpServer, type SftpServerOptions } from './server';
