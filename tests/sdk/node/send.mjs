// Sends page (anonymous), identify (linking), track and alias with @segment/analytics-node to a Stageline ingest.
//
//   node send.mjs <ingest-url> <write-key> <user-id>
//   (or STAGELINE_INGEST_URL, STAGELINE_WRITE_KEY, STAGELINE_USER_ID)
//
// Prints one JSON line {"statuses": [...], "errors": [...]} and exits 1 if any call failed.
import { Analytics } from '@segment/analytics-node'

const [host, writeKey, userId] = [
  process.argv[2] ?? process.env.STAGELINE_INGEST_URL,
  process.argv[3] ?? process.env.STAGELINE_WRITE_KEY,
  process.argv[4] ?? process.env.STAGELINE_USER_ID,
]
if (!host || !writeKey || !userId) {
  console.error('usage: node send.mjs <ingest-url> <write-key> <user-id>')
  process.exit(2)
}

const statuses = []
const errors = []
const analytics = new Analytics({ writeKey, host, maxRetries: 1, flushInterval: 200 })
analytics.on('http_response', (response) => statuses.push(response.status))
analytics.on('error', (err) => errors.push(String(err?.reason ?? err?.message ?? err)))

const anonymousId = `${userId}-device`
analytics.page({ anonymousId, name: 'Pricing', properties: { url: 'https://shop.example/pricing' } })
analytics.identify({ userId, anonymousId, traits: { plan: 'pro', sdk: 'analytics-node' } })
analytics.track({ userId, event: 'Order Completed', properties: { total: 42.5 } })
analytics.alias({ userId, previousId: `${userId}-old` })

await analytics.closeAndFlush({ timeout: 20000 })
console.log(JSON.stringify({ statuses, errors }))
process.exit(errors.length || statuses.some((s) => s !== 200) ? 1 : 0)
