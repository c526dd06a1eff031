// The official Node `openai` package against polyroute serve: a chat, a stream and a tool call.
// Usage: node node_openai_client.mjs BASE_URL KEY MODEL  → prints one JSON object.
import OpenAI from "openai";

const [baseURL, apiKey, model] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0 });
const ask = [{ role: "user", content: "What is the weather in Paris?" }];
const tools = [
  {
    type: "function",
    function: {
      name: "get_weather",
      description: "The weather in a city.",
      parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
    },
  },
];

const chat = await client.chat.completions.create({ model, messages: ask });

let streamed = "";
let usage = null;
const stream = await client.chat.completions.create({
  model,
  messages: ask,
  stream: true,
  stream_options: { include_usage: true },
});
for await (const chunk of stream) {
  streamed += chunk.choices[0]?.delta?.content ?? "";
  usage = chunk.usage ?? usage;
}

const withTools = await client.chat.completions.create({ model, messages: ask, tools });
const call = withTools.choices[0].message.tool_calls[0];
const answered = await client.chat.completions.create({
  model,
  tools,
  messages: [...ask, withTools.choices[0].message, { role: "tool", tool_call_id: call.id, content: "sunny" }],
});

let status = null;
try {
  await new OpenAI({ baseURL, apiKey: "sk-not-a-polyroute-key", maxRetries: 0 }).chat.completions.create({ model, messages: ask });
} catch (error) {
  status = error.status;
}

console.log(
  JSON.stringify({
    chat: chat.choices[0].message.content,
    streamed,
    usage,
    call: { name: call.function.name, arguments: JSON.parse(call.function.arguments) },
    answered: answered.choices[0].message.content,
    unauthorized: status,
  }),
);
