import t from 'tap'
import { bearer, build } from '../helper.js'

t.test('POST /events then GET /events/:id returns it in full', async (t) => {
  const { app, session } = await build(t)
  const writer = await session('write', { device: 'Switch', location: 'Hall' })
  const posted = await app.inject({
    method: 'POST',
    url: '/events',
    headers: bearer(writer.sessionKey),
    payload: { event: { name: 'Light', location: 'Living Room', action: 'Toggled', value: 21.5 } }
  })
  t.equal(posted.statusCode, 201)
  const body = posted.json()
  t.equal(body.message, 'Created Event')
  t.match(body.event, { id: Number, uri: `http://localhost:80/events/${body.event.id}` })
})
