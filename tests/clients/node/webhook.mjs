// A tenant's webhook endpoint written with whatsapp-api-js's own Node.js middleware, which verifies
// X-Hub-Signature-256 as the library does for Meta's webhooks.
//
//   node webhook.mjs '{"secret": "<the endpoint's signing secret>"}'
//
// Prints {"port": n}, then answers each POST with the status the middleware returns (200, or 401 when the
// signature does not verify). GET /received lists what its callbacks were given, in order.
import { createServer } from "node:http";
import { WhatsAppAPI } from "whatsapp-api-js/middleware/node-http";

const { secret } = JSON.parse(process.argv[2]);
const refuse = async (url) => { throw new Error(`this endpoint calls nothing: ${url}`); };
const Whatsapp = new WhatsAppAPI({ token: "unused", appSecret: secret, v: "v24.0", ponyfill: { fetch: refuse } });
const received = [];

Whatsapp.on.message = ({ phoneID, from, name, message }) => { received.push({ kind: "message", phoneID, from, name, message }); };
Whatsapp.on.status = ({ phoneID, id, status }) => { received.push({ kind: "status", phoneID, id, status }); };

const server = createServer(async (req, res) => {
  if (req.method === "GET" && req.url === "/received") {
    res.writeHead(200, { "Content-Type": "application/json" });
    res.end(JSON.stringify(received));
    return;
  }
  const status = await Whatsapp.handle_post(req);
  received.push({ kind: "answer", status });
  res.writeHead(status);
  res.end();
});
server.listen(0, "127.0.0.1", () => {
  process.stdout.write(JSON.stringify({ port: server.address().port }) + "\n");
});
process.on("SIGTERM", () => server.close(() => process.exit(0)));
