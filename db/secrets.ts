import { createHash, randomBytes } from 'node:crypto'

/** A new API key: 43 URL-safe characters (256 random bits). */
export const newApiKey = (): string => randomBytes(32).toString('base64url')

/** A new session key: 64 hex characters (256 random bits). */
export const newSessionKey = (): string => randomBytes(32).toString('hex')

/** Keys are stored only as their SHA-256 hash; the plain key is shown once. */
export const hashSecret = (secret: string): string => createHash('sha256').update(secret).digest('hex')
