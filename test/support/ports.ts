export { freePort } from '../../src/net/freePort';
