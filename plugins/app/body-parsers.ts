import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import qs from 'qs'
import { shorten } from './errors.js'

/** A 400 answered in the envelope with this message (plugins/app/errors.ts). */
const badRequest = (message: string) => Object.assign(new Error(message), { statusCode: 400 })

/** Field names and numbers quoted in a message are cut to this length. */
const QUOTED_MAX = 40

/**
 * Percent-decoding that refuses what it cannot decode: qs's own decoder keeps a malformed
 * field (`%zz`, or bytes that are not UTF-8 such as `%FF`) as its raw text, which would then
 * be stored as if the client had meant it. `__proto__` is refused too: qs drops it silently.
 */
function strictDecoder (text: string, _default: unknown, _charset: unknown, type: 'key' | 'value'): string {
  let decoded: string
  try {
    decoded = decodeURIComponent(text.replace(/\+/g, ' '))
  } catch {
    throw badRequest(`Malformed form field ${type} '${shorten(text, QUOTED_MAX)}': not valid percent-encoded UTF-8`)
  }
  if (type === 'key') {
    // qs turns %5B/%5D into brackets before it splits a key, so `subscribe[a%5Db]` would
    // subscribe to `a`: a name with brackets in it cannot be sent in bracket notation. And an
    // empty `[]` appends: `subscribe[Light]=&subscribe[]=` would subscribe to an event `0`.
    if (!/^(?:[^[\]]+(?:\[[^[\]]+\])*)?$/.test(decoded)) {
      throw badRequest(`Malformed form field name '${shorten(decoded, QUOTED_MAX)}': use name[key][key], with no empty or other brackets`)
    }
    if (/(?:^|\[)__proto__(?:\]|$)/.test(decoded)) {
      throw badRequest(`Malformed form field name '${shorten(decoded, QUOTED_MAX)}': __proto__ is not a field name`)
    }
  }
  return decoded
}

const formOptions: qs.IParseOptions = {
  depth: 3,
  parameterLimit: 1000,
  // more parameters, or deeper brackets, than that are a 400, never silently dropped
  throwOnLimitExceeded: true,
  strictDepth: true,
  // null-prototype objects, so names like `toString` or `constructor` are kept, not dropped
  plainObjects: true,
  // no field is a list: subscribe[0]= is a subscription to the event `0`
  parseArrays: false,
  decoder: strictDecoder
}

/**
 * Form-encoded text (a POST body, or GET /auth's query) with nested fields in bracket notation,
 * `subscribe[Light][location]=Hall`, read into the same shape as the JSON body. Anything it
 * cannot read exactly is a 400 (an error with `statusCode` 400), never a silently changed value.
 */
export function parseForm (text: string): Record<string, unknown> {
  try {
    return qs.parse(text, formOptions)
  } catch (err) {
    if ((err as { statusCode?: unknown }).statusCode === 400) throw err
    throw badRequest(`Malformed form body: ${(err as Error).message}`)
  }
}

/** Number tokens of a JSON text; its strings are matched too, to skip the digits inside them. */
const jsonTokens = /"[^"\\]*(?:\\.[^"\\]*)*"|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?/g

/** A decimal number as `[-]<digits>e<exponent>` without leading or trailing zeros ('0' for zero). */
function canonicalDecimal (text: string): string {
  const parts = /^(-?)(\d+)(?:\.(\d+))?(?:[eE]([+-]?\d+))?$/.exec(text)
  if (parts === null) return text // Infinity
  const [, sign, whole, fraction = '', exponent = '0'] = parts
  const digits = (whole! + fraction).replace(/^0+/, '')
  if (digits === '') return '0'
  const significant = digits.replace(/0+$/, '')
  return `${sign}${significant}e${Number(exponent) - fraction.length + digits.length - significant.length}`
}

/**
 * Whether a JSON text may hold a number that is not exact: one with an exponent, or with 16 or
 * more digits. A decimal of at most 15 digits and no exponent always is (a double holds 15
 * significant decimal digits), so most bodies need no scan of their tokens.
 */
const mayBeInexact = /\d[eE]|\d(?:\.?\d){15}/

/**
 * The first number in a (valid) JSON text that a JavaScript number cannot hold exactly, so that
 * its text as cred would store it (`String(value)`) names a different number: too many digits
 * (`12345678901234567890`), too large (`1e400`) or too small (`1e-400`).
 */
export function inexactNumber (json: string): string | undefined {
  if (!mayBeInexact.test(json)) return undefined
  for (const [token] of json.matchAll(jsonTokens)) {
    if (token.charCodeAt(0) === 0x22) continue // a string
    if (canonicalDecimal(token) !== canonicalDecimal(String(Number(token)))) return token
  }
  return undefined
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })

/**
 * A body's text. Bytes that are not UTF-8 (a device sending Latin-1 `Küche`) are a 400:
 * decoding them as usual would store U+FFFD in their place.
 */
function bodyText (body: Buffer, kind: string): string {
  try {
    return utf8.decode(body)
  } catch {
    throw badRequest(`Malformed ${kind} body: not valid UTF-8`)
  }
}

/**
 * Fastify's JSON parser (same errors, same prototype-poisoning protection), refusing bodies
 * that would not be stored as sent: bytes that are not UTF-8, and numbers a JavaScript
 * number cannot hold (an event `value` 12345678901234567890 would be stored as "12345678901234567000").
 */
function exactJson (fastify: FastifyInstance) {
  const parse = fastify.getDefaultJsonParser(fastify.initialConfig.onProtoPoisoning ?? 'error', fastify.initialConfig.onConstructorPoisoning ?? 'error')
  fastify.removeContentTypeParser('application/json')
  fastify.addContentTypeParser('application/json', { parseAs: 'buffer' }, function (request, body, done) {
    const text = bodyText(body as Buffer, 'JSON')
    parse(request, text, (err, value) => {
      if (err !== null) return done(err, undefined)
      const inexact = inexactNumber(text)
      if (inexact !== undefined) {
        return done(badRequest(`The number ${shorten(inexact, QUOTED_MAX)} in the JSON body cannot be stored exactly: send it as a string`), undefined)
      }
      done(null, value)
    })
  })
}

// The original web UI posts /auth form-encoded, with nested fields in bracket notation
// (subscribe[Light][location]=Hall); parseForm reads that into the same shape as the JSON body.
// Bodies are JSON everywhere, and form-encoded only where a route asks for it with
// acceptFormBodies() (POST /auth): a page of another site can send a form (or text/plain)
// without asking first, JSON it cannot, so anything else is 415.
// (Parsers throw 400s; Fastify hands a parser's exception to the error handler.)
declare module 'fastify' {
  interface FastifyInstance {
    /** reads form-encoded text (bracket notation) strictly: anything it cannot read exactly is a 400 */
    parseForm: typeof parseForm
    /** accepts form-encoded bodies (read with parseForm) on the routes of the calling plugin */
    acceptFormBodies: () => void
  }
}

export default fp(async function bodyParsers (fastify) {
  fastify.decorate('parseForm', parseForm)
  fastify.decorate('acceptFormBodies', function (this: FastifyInstance) {
    this.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'buffer' }, function (_request, body, done) {
      done(null, parseForm(bodyText(body as Buffer, 'form')))
    })
  })
  fastify.removeContentTypeParser('text/plain')
  exactJson(fastify)
}, { name: 'cred-body-parsers' })
