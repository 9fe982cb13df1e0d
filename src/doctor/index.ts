/** `pveflow doctor`: start-up checks of the token, the cluster, the nodes and NetBird. */
export { fail, pass, type Finding } from './finding';
export { formatFindings, runDoctor, type DoctorDeps } from './runDoctor';
export { checkTokenFormat, checkPve, type PveCheckDeps, type PveCheckSettings } from './pveChecks';
export { checkSftp } from './sftpCheck';
export { checkNetbird } from './netbirdCheck';
export { checkNetbirdPolicies, checkNetbirdPropagation, policyExposures, type PolicyExposure } from './netbirdPolicyCheck';
export { agentPrivilege, missingPrivileges, pveflowRolePrivileges, requiredPrivileges, type Requirement } from './privileges';
export { checkBridges, checkCatalogue, importStorages, unreachableNodes, type CatalogueImage } from './catalogueChecks';
export { doctorCatalogueSettings } from './catalogueSettings';
