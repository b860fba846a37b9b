// qinfer/qinfer.hpp — everything: load a GGUF model, open sessions, generate text.
//
//   auto m = std::make_shared<const qinfer::model>("model.gguf");
//   qinfer::session s(m);
//   qinfer::generate(s, "Once upon a time", {}, [](std::string_view t) { std::cout << t; return true; });
#pragma once

#include "app/chat_session.hpp"
#include "app/generate.hpp"
#include "app/state.hpp"
#include "core/config.hpp"
#include "core/cpu.hpp"
#include "core/error.hpp"
#include "core/fp16.hpp"
#include "core/types.hpp"
#include "eval/perplexity.hpp"
#include "gguf/reader.hpp"
#include "gguf/writer.hpp"
#include "model/model.hpp"
#include "model/prefix_cache.hpp"
#include "model/session.hpp"
#include "ops/thread_pool.hpp"
#include "quant/dispatch.hpp"
#include "sampling/sampler.hpp"
#include "text/chat_template.hpp"
#include "text/tokenizer.hpp"
#include "tools/quantize.hpp"
