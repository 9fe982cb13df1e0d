// The workflow bundle's entry: workflows only (anything else exported here would become a "workflow type").
export { vmRequest } from './vmRequest';
export { vmBuild } from './vmBuild';
export { vmCompletion } from './vmCompletion';
export { clusterSync } from './clusterSync';
export { cloneSlots } from './cloneSlots';
export { ipPool } from './ipPool';
export { imageCatalogue } from './imageCatalogue';
export { imageImport } from './imageImport';
export { imageTemplateRemoval } from './imageTemplateRemoval';
export { apiKeyRegistry } from './apiKeyRegistry';
