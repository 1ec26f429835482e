// check.js validates Microsoft Teams messages carrying an Adaptive Card with
// Microsoft's own library (adaptivecards, pinned in package.json). It reads
// one JSON document per line on stdin, each a Teams message
// {"type":"message","attachments":[{"contentType":"application/vnd.microsoft.card.adaptive","content":<card>}]},
// and exits 1 after printing every problem: a message of another shape,
// what the library reports while parsing (unknown element types, invalid
// property values) and validating the card, and any property the library
// does not know (it drops those silently, so they are found by comparing
// the card with what the library serialises back).
"use strict";
// The package's lib/ is ES modules without extensions, which Node cannot
// load; dist/ is the bundle, which parses without a DOM.
const AC = require("adaptivecards/dist/adaptivecards.js");
const readline = require("readline");

// Host extensions Teams reads beside the Adaptive Card schema.
const hostProperties = new Set(["msteams"]);

function unknownProperties(input, output, path, out) {
  if (Array.isArray(input)) {
    if (!Array.isArray(output) || output.length !== input.length) {
      // An element the library could not read is reported by the parse.
      out.push(`${path}: ${input.length} elements, the library kept ${Array.isArray(output) ? output.length : 0}`);
      return;
    }
    input.forEach((v, i) => unknownProperties(v, Array.isArray(output) ? output[i] : undefined, `${path}[${i}]`, out));
    return;
  }
  if (input === null || typeof input !== "object") {
    return;
  }
  for (const key of Object.keys(input)) {
    if (path === "card" && hostProperties.has(key)) {
      continue;
    }
    if (output === null || typeof output !== "object" || !(key in output)) {
      // The library leaves out properties at their default value.
      if (!isDefault(input[key])) {
        out.push(`${path}.${key}: not an Adaptive Card property (the library drops it)`);
      }
      continue;
    }
    unknownProperties(input[key], output[key], `${path}.${key}`, out);
  }
}

function isDefault(v) {
  return v === false || v === null || v === "default" || v === "Default";
}

function checkMessage(line) {
  const problems = [];
  let msg;
  try {
    msg = JSON.parse(line);
  } catch (e) {
    return [`not JSON: ${e.message}`];
  }
  if (msg.type !== "message") {
    problems.push(`type is ${JSON.stringify(msg.type)}, want "message"`);
  }
  if (!Array.isArray(msg.attachments) || msg.attachments.length === 0) {
    return problems.concat("attachments: want a non-empty list");
  }
  msg.attachments.forEach((a, i) => {
    if (a.contentType !== "application/vnd.microsoft.card.adaptive") {
      problems.push(`attachments[${i}].contentType is ${JSON.stringify(a.contentType)}`);
    }
    problems.push(...checkCard(a.content).map((p) => `attachments[${i}].content: ${p}`));
  });
  return problems;
}

function checkCard(content) {
  const problems = [];
  if (content === null || typeof content !== "object" || content.type !== "AdaptiveCard") {
    return ["not an AdaptiveCard"];
  }
  const ctx = new AC.SerializationContext();
  const card = new AC.AdaptiveCard();
  card.parse(content, ctx);
  for (let i = 0; i < ctx.eventCount; i++) {
    const ev = ctx.getEventAt(i);
    problems.push(`parse: ${AC.ValidationEvent[ev.event]}: ${ev.message}`);
  }
  const results = card.validateProperties();
  for (const ev of results.validationEvents) {
    problems.push(`validate: ${AC.ValidationEvent[ev.event]}: ${ev.message}`);
  }
  unknownProperties(content, card.toJSON(new AC.SerializationContext()), "card", problems);
  return problems;
}

async function main() {
  const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
  let n = 0;
  let failed = false;
  for await (const line of rl) {
    if (line.trim() === "") {
      continue;
    }
    n++;
    for (const p of checkMessage(line)) {
      console.log(`message ${n}: ${p}`);
      failed = true;
    }
  }
  if (n === 0) {
    console.log("no message on stdin");
    failed = true;
  }
  process.exit(failed ? 1 : 0);
}

main();
