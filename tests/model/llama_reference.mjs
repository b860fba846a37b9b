// Runs llama.cpp (through node-llama-cpp, installed into the build tree by the oracle-install
// test) on a GGUF file and writes what qinfer's conformance tests compare against.
//
//   node llama_reference.mjs SPEC.json OUT_DIR
// SPEC: {"oracle_dir": "...", "model": "file.gguf", "n_ctx": 256, "threads": 2, "kv_type": "F32" (optional),
//        "cases": [{"name": "a", "prompt": "text" | "tokens": [..], "add_bos": true, "n_predict": 64,
//                   "n_vocab": V, "shift": {"keep": K, "discard": D, "then": [..]} (optional)}]}
// OUT_DIR/<name>.tokens: two lines of space-separated ids: the prompt tokens as evaluated
//                       (BOS included), then the greedy continuation.
// OUT_DIR/<name>.probs: float32 little-endian, P rows of V next-token probabilities, one per
//                       evaluated position (prompt tokens, then each generated token but the last).
// A case with "shift" evaluates its tokens, erases positions [keep, keep + discard) with
// llama.cpp's context shift (the later cells move down, their keys re-rotated), then
// evaluates "then": its probs are one row per token of "then".
import fs from "node:fs";
import path from "node:path";
import {pathToFileURL} from "node:url";

const [specPath, outDir] = process.argv.slice(2);
const spec = JSON.parse(fs.readFileSync(specPath, "utf8"));
const entry = path.join(spec.oracle_dir, "node_modules", "node-llama-cpp", "dist", "index.js");
const {getLlama, LlamaLogLevel} = await import(pathToFileURL(entry).href);

const llama = await getLlama({gpu: false, build: "never", usePrebuiltBinaries: true, logLevel: LlamaLogLevel.error});
const model = await llama.loadModel({modelPath: spec.model});
fs.mkdirSync(outDir, {recursive: true});

for (const c of spec.cases) {
    // A fresh context per case: flash attention off (qinfer implements the classic path),
    // fp16 KV cache (llama.cpp's default) unless the spec names another type, one sequence.
    const kv = spec.kv_type ? {experimentalKvCacheKeyType: spec.kv_type, experimentalKvCacheValueType: spec.kv_type} : {};
    const ctx = await model.createContext({contextSize: spec.n_ctx ?? 256, flashAttention: false,
        threads: spec.threads ?? 2, batchSize: spec.n_ctx ?? 256, ...kv});
    const seq = ctx.getSequence();
    let tokens = c.tokens ?? Array.from(model.tokenize(c.prompt, false));
    if (c.add_bos && model.tokens.bos != null) tokens = [model.tokens.bos, ...tokens];
    // llama.cpp's greedy continuation first (its own sampler, temperature 0), then one
    // batch over prompt + continuation for the distribution at every position: evaluating
    // token by token through controlledEvaluate costs ~0.1 s a call.
    if (c.shift) {
        await seq.evaluateWithoutGeneratingNewTokens(tokens);
        await seq.eraseContextTokenRanges([{start: c.shift.keep, end: c.shift.keep + c.shift.discard}]);
        if (seq.nextTokenIndex !== tokens.length - c.shift.discard)
            throw new Error(`context shift left ${seq.nextTokenIndex} tokens, not ${tokens.length - c.shift.discard}`);
        const res = await seq.controlledEvaluate(c.shift.then.map((t) => [t, {generateNext: {probabilities: true}}]));
        const buf = Buffer.alloc(res.length * c.n_vocab * 4);
        res.forEach((r, i) => {
            const row = new Float32Array(c.n_vocab);
            for (const [tok, p] of r.next.probabilities) row[tok] = p;
            Buffer.from(row.buffer).copy(buf, i * c.n_vocab * 4);
        });
        fs.writeFileSync(path.join(outDir, c.name + ".probs"), buf);
        fs.writeFileSync(path.join(outDir, c.name + ".tokens"), tokens.join(" ") + "\n\n");
        await ctx.dispose();
        continue;
    }
    const generated = [];
    if ((c.n_predict ?? 0) > 0) {
        for await (const t of seq.evaluate(tokens, {temperature: 0})) {
            generated.push(t);
            if (generated.length >= c.n_predict) break;
        }
        await seq.clearHistory();
    }
    const all = [...tokens, ...generated.slice(0, -1)];
    const want = {generateNext: {probabilities: true}};
    const res = await seq.controlledEvaluate(all.map((t) => [t, want]));
    const rows = res.map((r) => {
        const row = new Float32Array(c.n_vocab);
        for (const [tok, p] of r.next.probabilities) row[tok] = p;
        return row;
    });
    const buf = Buffer.alloc(rows.length * c.n_vocab * 4);
    rows.forEach((row, i) => Buffer.from(row.buffer).copy(buf, i * c.n_vocab * 4));
    fs.writeFileSync(path.join(outDir, c.name + ".probs"), buf);
    fs.writeFileSync(path.join(outDir, c.name + ".tokens"), tokens.join(" ") + "\n" + generated.join(" ") + "\n");
    await ctx.dispose();
}
await model.dispose();
await llama.dispose();
