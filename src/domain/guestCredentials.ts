/**
 * A guest's logins (the seeds' `arrow_pw`, `root_pw`): generated per build, held only in encrypted workflow state,
 * shown once to one of the request's consultants.
 */
export interface GuestCredentials {
  username: string;
  password: string;
  rootPassword: string;
}
