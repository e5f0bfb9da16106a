// Stream one sentence from a gsvd daemon and write raw PCM; proves the contract works outside Python.
// The stream's first message carries its AI-generated label: it is printed with the result (and written to
// OUT.pcm.label.json beside the audio), and a stream without one is an error.
// usage: node stream.mjs ADDRESS VOICE TEXT [OUT.pcm] [TOKEN]
import { writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import path from "node:path";
import grpc from "@grpc/grpc-js";
import protoLoader from "@grpc/proto-loader";

const here = path.dirname(fileURLToPath(import.meta.url));
const protoRoot = path.resolve(here, "../../proto");
const def = protoLoader.loadSync("gsvd/v1/gsvd.proto", { includeDirs: [protoRoot], keepCase: true, longs: Number, enums: String, defaults: true });
const gsvd = grpc.loadPackageDefinition(def).gsvd.v1;

const [address, voice, text, out = "out.pcm", token] = process.argv.slice(2);
if (!address || !voice || !text) {
  console.error("usage: node stream.mjs ADDRESS VOICE TEXT [OUT.pcm] [TOKEN]");
  process.exit(2);
}
const client = new gsvd.Synthesizer(address, grpc.credentials.createInsecure());
const meta = new grpc.Metadata();
if (token) meta.add("authorization", `Bearer ${token}`);

const call = client.Synthesize(
  { text, voice, output: { encoding: "PCM_S16LE", sample_rate_hz: 0 }, options: { seed: 1, max_new_tokens: 40 }, request_id: "ts-client" },
  meta,
  { deadline: Date.now() + 60000 },
);
let format = null;
let finalSeen = false;
const pieces = [];
call.on("data", (resp) => {
  if (resp.start) format = resp.start;
  if (resp.audio) {
    pieces.push(resp.audio.audio);
    if (resp.audio.is_final) finalSeen = true;
  }
});
call.on("error", (err) => {
  console.error(`error: ${err.code} ${err.details}`);
  process.exit(1);
});
call.on("end", () => {
  const pcm = Buffer.concat(pieces);
  const label = format?.label?.ai_generated ? format.label : null;
  writeFileSync(out, pcm);
  if (label) writeFileSync(`${out}.label.json`, JSON.stringify(label, null, 1));
  else console.error("error: the stream carried no AI-generated label");
  console.log(JSON.stringify({ sample_rate_hz: format?.sample_rate_hz, encoding: format?.encoding, chunks: pieces.length, bytes: pcm.length, final: finalSeen, label }));
  process.exit(format && label && finalSeen && pcm.length > 0 ? 0 : 1);
});
