/**
 * Names of the advisory locks cred takes (as `hashtextextended(name, 0)`), so that an
 * operator looking at pg_locks can tell them apart.
 */
export const lockNames = {
  /** held on a dedicated connection while one instance applies the migrations */
  migrations: 'cred-server:migrations',
  /** held by each event insert until it commits, so event ids commit in order */
  eventOrder: 'cred-server:event-order',
  /** held by each revocation until it commits, so the last admin key check holds across instances */
  revocation: 'cred-server:revocation',
  /** held on a dedicated connection by the instance that runs a bridge, followed by ':<bridge name>' */
  bridge: 'cred-server:bridge'
} as const
