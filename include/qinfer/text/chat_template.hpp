// qinfer/text/chat_template.hpp — chat prompts in the format a model was trained on.
//
// A GGUF carries its chat template as Jinja source (tokenizer.chat_template). Instead of running
// Jinja, the template is recognised by marker strings and the conversation is formatted by
// native code per family: the same recognition and output as llama.cpp's built-in templates
// (llama_chat_apply_template), families and quirks included. A template can also be named
// directly ("chatml", "llama3", "mistral-v7", ...).
#pragma once

#include <cstddef>
#include <span>
#include <string>
#include <string_view>

#include "../core/config.hpp"
#include "../core/error.hpp"

QINFER_NAMESPACE_BEGIN
namespace text {

enum class chat_format {
    unknown,
    chatml, llama2, llama2_sys, llama2_sys_bos, llama2_sys_strip,
    mistral_v1, mistral_v3, mistral_v3_tekken, mistral_v7, mistral_v7_tekken,
    phi3, phi4, falcon3, zephyr, monarch, gemma, orion, openchat, vicuna, vicuna_orca,
    deepseek, deepseek2, deepseek3, deepseek_ocr, command_r, llama3, chatglm3, chatglm4, glmedge, minicpm,
    exaone3, exaone4, exaone_moe, rwkv_world, granite3, granite4_0, granite4_1, gigachat, megrez, yandex,
    bailing, bailing_think, bailing2, llama4, smolvlm, dots1, hunyuan_moe, gpt_oss, hunyuan_dense, hunyuan_vl,
    kimi_k2, seed_oss, grok2, pangu_embed, solar_open,
};

struct chat_message {
    std::string role;     // "system", "user", "assistant", ...
    std::string content;
};

struct chat_template {
    chat_format format = chat_format::unknown;
    bool known() const noexcept { return format != chat_format::unknown; }
};

namespace detail {

struct chat_format_name {
    std::string_view name;
    chat_format format;
};

// llama.cpp's names for its built-in templates.
inline constexpr chat_format_name chat_format_names[] = {
    {"chatml", chat_format::chatml}, {"llama2", chat_format::llama2}, {"llama2-sys", chat_format::llama2_sys},
    {"llama2-sys-bos", chat_format::llama2_sys_bos}, {"llama2-sys-strip", chat_format::llama2_sys_strip},
    {"mistral-v1", chat_format::mistral_v1}, {"mistral-v3", chat_format::mistral_v3},
    {"mistral-v3-tekken", chat_format::mistral_v3_tekken}, {"mistral-v7", chat_format::mistral_v7},
    {"mistral-v7-tekken", chat_format::mistral_v7_tekken}, {"phi3", chat_format::phi3}, {"phi4", chat_format::phi4},
    {"falcon3", chat_format::falcon3}, {"zephyr", chat_format::zephyr}, {"monarch", chat_format::monarch},
    {"gemma", chat_format::gemma}, {"orion", chat_format::orion}, {"openchat", chat_format::openchat},
    {"vicuna", chat_format::vicuna}, {"vicuna-orca", chat_format::vicuna_orca}, {"deepseek", chat_format::deepseek},
    {"deepseek2", chat_format::deepseek2}, {"deepseek3", chat_format::deepseek3},
    {"deepseek-ocr", chat_format::deepseek_ocr}, {"command-r", chat_format::command_r},
    {"llama3", chat_format::llama3}, {"chatglm3", chat_format::chatglm3}, {"chatglm4", chat_format::chatglm4},
    {"glmedge", chat_format::glmedge}, {"minicpm", chat_format::minicpm}, {"exaone3", chat_format::exaone3},
    {"exaone4", chat_format::exaone4}, {"exaone-moe", chat_format::exaone_moe},
    {"rwkv-world", chat_format::rwkv_world}, {"granite", chat_format::granite3},
    {"granite-4.0", chat_format::granite4_0}, {"granite-4.1", chat_format::granite4_1},
    {"gigachat", chat_format::gigachat}, {"megrez", chat_format::megrez}, {"yandex", chat_format::yandex},
    {"bailing", chat_format::bailing}, {"bailing-think", chat_format::bailing_think},
    {"bailing2", chat_format::bailing2}, {"llama4", chat_format::llama4}, {"smolvlm", chat_format::smolvlm},
    {"hunyuan-moe", chat_format::hunyuan_moe}, {"gpt-oss", chat_format::gpt_oss},
    {"hunyuan-dense", chat_format::hunyuan_dense}, {"hunyuan-vl", chat_format::hunyuan_vl},
    {"kimi-k2", chat_format::kimi_k2}, {"seed_oss", chat_format::seed_oss}, {"grok-2", chat_format::grok2},
    {"pangu-embedded", chat_format::pangu_embed}, {"solar-open", chat_format::solar_open},
};

inline std::string_view trim(std::string_view s) {
    const auto space = [](char c) { return c == ' ' || (c >= '\t' && c <= '\r'); };
    while (!s.empty() && space(s.front())) s.remove_prefix(1);
    while (!s.empty() && space(s.back())) s.remove_suffix(1);
    return s;
}

inline std::string ascii_upper(std::string s) {
    for (char& c : s)
        if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 32);
    return s;
}

}  // namespace detail

// llama.cpp's name of a family (dots1 has none there: it is only ever detected).
inline std::string_view name(chat_format f) {
    for (const auto& n : detail::chat_format_names)
        if (n.format == f) return n.name;
    return f == chat_format::dots1 ? "dots1" : "unknown";
}

// Recognises a template from its Jinja source (or a built-in name). The tests run in
// llama.cpp's order, which matters: several families share markers.
inline chat_template detect_chat_template(std::string_view tmpl) {
    using f = chat_format;
    for (const auto& n : detail::chat_format_names)
        if (n.name == tmpl) return {n.format};
    const auto has = [&](std::string_view s) { return tmpl.find(s) != std::string_view::npos; };

    if (has("<|im_start|>")) {
        if (has("<|im_sep|>")) return {f::phi4};
        if (has("<end_of_utterance>")) return {f::smolvlm};  // <|im_start|> as bos, but not chatml
        return {f::chatml};
    }
    if (tmpl.starts_with("mistral") || has("[INST]")) {
        if (has("[SYSTEM_PROMPT]")) return {f::mistral_v7};
        // Mistral's official v1 / v3 / v3-tekken templates
        if (has("' [INST] ' + system_message") || has("[AVAILABLE_TOOLS]")) {
            if (has(" [INST]")) return {f::mistral_v1};
            if (has("\"[INST]\"")) return {f::mistral_v3_tekken};
            return {f::mistral_v3};
        }
        // llama2 and variants: system message support, bos inside the history, stripped content
        if (has("content.strip()")) return {f::llama2_sys_strip};
        if (has("bos_token + '[INST]")) return {f::llama2_sys_bos};
        if (has("<<SYS>>")) return {f::llama2_sys};
        return {f::llama2};
    }
    if (has("<|assistant|>") && has("<|end|>")) return {f::phi3};
    if (has("[gMASK]<sop>")) return {f::chatglm4};
    if (has("<|assistant|>") && has("<|user|>")) {
        if (has("<|tool_declare|>")) return {f::exaone_moe};
        return {has("</s>") ? f::falcon3 : f::glmedge};
    }
    if (has("<|{{ item['role'] }}|>") && has("<|begin_of_image|>")) return {f::glmedge};
    if (has("<|user|>") && has("<|endoftext|>")) return {f::zephyr};
    if (has("bos_token + message['role']")) return {f::monarch};
    if (has("<start_of_turn>")) return {f::gemma};
    if (has("'\\n\\nAssistant: ' + eos_token")) return {f::orion};
    if (has("GPT4 Correct ")) return {f::openchat};
    if (has("USER: ") && has("ASSISTANT: ")) return {has("SYSTEM: ") ? f::vicuna_orca : f::vicuna};
    if (has("### Instruction:") && has("<|EOT|>")) return {f::deepseek};
    if (has("<|START_OF_TURN_TOKEN|>") && has("<|USER_TOKEN|>")) return {f::command_r};
    if (has("<|start_header_id|>") && has("<|end_header_id|>")) return {f::llama3};
    if (has("[gMASK]sop")) return {f::chatglm3};
    if (has("<\xE7\x94\xA8\xE6\x88\xB7>")) return {f::minicpm};  // <用户>
    if (has("'Assistant: ' + message['content'] + eos_token")) return {f::deepseek2};
    if (has("<\xEF\xBD\x9C" "Assistant\xEF\xBD\x9C>") && has("<\xEF\xBD\x9CUser\xEF\xBD\x9C>") &&
        has("<\xEF\xBD\x9C" "end\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>"))
        return {f::deepseek3};
    if (has("[|system|]") && has("[|assistant|]") && has("[|endofturn|]"))
        return {has("[|tool|]") ? f::exaone4 : f::exaone3};
    if (has("rwkv-world") || has("{{- 'User: ' + message['content']|trim + '\\n\\n' -}}")) return {f::rwkv_world};
    if (has("<|start_of_role|>")) {
        if (has("<tool_call>") || has("<tools>")) return {has("g4_default_system_message") ? f::granite4_0 : f::granite4_1};
        return {f::granite3};
    }
    if (has("message['role'] + additional_special_tokens[0] + message['content'] + additional_special_tokens[1]"))
        return {f::gigachat};
    if (has("<|role_start|>")) return {f::megrez};
    if (has(" \xD0\x90\xD1\x81\xD1\x81\xD0\xB8\xD1\x81\xD1\x82\xD0\xB5\xD0\xBD\xD1\x82:")) return {f::yandex};  // " Ассистент:"
    if (has("<role>ASSISTANT</role>") && has("'HUMAN'")) return {f::bailing};
    if (has("<role>ASSISTANT</role>") && has("\"HUMAN\"") && has("<think>")) return {f::bailing_think};
    if (has("<role>ASSISTANT</role>") && has("<role>HUMAN</role>") && has("<|role_end|>")) return {f::bailing2};
    if (has("<|header_start|>") && has("<|header_end|>")) return {f::llama4};
    if (has("<|endofuserprompt|>")) return {f::dots1};
    if (has("<|extra_0|>") && has("<|extra_4|>")) return {f::hunyuan_moe};
    if (has("<|start|>") && has("<|channel|>")) return {f::gpt_oss};
    if (has("<\xEF\xBD\x9Chy_Assistant\xEF\xBD\x9C>") &&
        has("<\xEF\xBD\x9Chy_begin\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>"))
        return {f::hunyuan_vl};
    if (has("<\xEF\xBD\x9Chy_Assistant\xEF\xBD\x9C>") &&
        has("<\xEF\xBD\x9Chy_place\xE2\x96\x81holder\xE2\x96\x81no\xE2\x96\x81" "3\xEF\xBD\x9C>"))
        return {f::hunyuan_dense};
    if (has("<|im_assistant|>assistant<|im_middle|>")) return {f::kimi_k2};
    if (has("<seed:bos>")) return {f::seed_oss};
    if (has("'Assistant: '  + message['content'] + '<|separator|>")) return {f::grok2};
    if (has("[unused9]\xE7\xB3\xBB\xE7\xBB\x9F\xEF\xBC\x9A[unused10]")) return {f::pangu_embed};  // [unused9]系统：[unused10]
    if (has("<|begin|>") && has("<|end|>") && has("<|content|>")) return {f::solar_open};
    return {f::unknown};
}

// Formats a conversation. add_assistant_prompt appends the header that starts the model's
// reply (for the families that have one). Throws qinfer::error for an unknown template.
inline std::string apply_chat_template(const chat_template& tmpl, std::span<const chat_message> chat,
                                       bool add_assistant_prompt) {
    using f = chat_format;
    using detail::trim;
    const bool add = add_assistant_prompt;
    std::string o;
    const auto put = [&](auto&&... parts) { (o.append(parts), ...); };

    switch (tmpl.format) {
        case f::chatml:
            for (const auto& m : chat) put("<|im_start|>", m.role, "\n", m.content, "<|im_end|>\n");
            if (add) put("<|im_start|>assistant\n");
            break;
        case f::mistral_v7:
        case f::mistral_v7_tekken: {
            const std::string_view sp = tmpl.format == f::mistral_v7 ? " " : "";
            for (const auto& m : chat) {
                if (m.role == "system") put("[SYSTEM_PROMPT]", sp, m.content, "[/SYSTEM_PROMPT]");
                else if (m.role == "user") put("[INST]", sp, m.content, "[/INST]");
                else put(sp, m.content, "</s>");
            }
            break;
        }
        case f::mistral_v1:
        case f::mistral_v3:
        case f::mistral_v3_tekken: {
            const std::string_view lead = tmpl.format == f::mistral_v1 ? " " : "";
            const std::string_view trail = tmpl.format == f::mistral_v3_tekken ? "" : " ";
            bool in_turn = false;
            for (const auto& m : chat) {
                if (!in_turn) {
                    put(lead, "[INST]", trail);
                    in_turn = true;
                }
                if (m.role == "system") {
                    put(m.content, "\n\n");
                } else if (m.role == "user") {
                    put(m.content, lead, "[/INST]");
                } else {
                    put(trail, tmpl.format == f::mistral_v3 ? trim(m.content) : std::string_view(m.content), "</s>");
                    in_turn = false;
                }
            }
            break;
        }
        case f::llama2:
        case f::llama2_sys:
        case f::llama2_sys_bos:
        case f::llama2_sys_strip: {
            const bool sys = tmpl.format != f::llama2;
            bool in_turn = true;  // the first [INST] comes without bos
            put("[INST] ");
            for (const auto& m : chat) {
                const std::string_view content = tmpl.format == f::llama2_sys_strip ? trim(m.content) : m.content;
                if (!in_turn) {
                    in_turn = true;
                    put(tmpl.format == f::llama2_sys_bos ? "<s>[INST] " : "[INST] ");
                }
                if (m.role == "system") {
                    if (sys) put("<<SYS>>\n", content, "\n<</SYS>>\n\n");
                    else put(content, "\n");  // no system slot: the text joins the first turn
                } else if (m.role == "user") {
                    put(content, " [/INST]");
                } else {
                    put(content, "</s>");
                    in_turn = false;
                }
            }
            break;
        }
        case f::phi3:
            for (const auto& m : chat) put("<|", m.role, "|>\n", m.content, "<|end|>\n");
            if (add) put("<|assistant|>\n");
            break;
        case f::phi4:
            for (const auto& m : chat) put("<|im_start|>", m.role, "<|im_sep|>", m.content, "<|im_end|>");
            if (add) put("<|im_start|>assistant<|im_sep|>");
            break;
        case f::falcon3:
            for (const auto& m : chat) put("<|", m.role, "|>\n", m.content, "\n");
            if (add) put("<|assistant|>\n");
            break;
        case f::zephyr:
            for (const auto& m : chat) put("<|", m.role, "|>\n", m.content, "<|endoftext|>\n");
            if (add) put("<|assistant|>\n");
            break;
        case f::monarch:
            for (std::size_t i = 0; i < chat.size(); ++i) put(i == 0 ? "" : "<s>", chat[i].role, "\n", chat[i].content, "</s>\n");
            if (add) put("<s>assistant\n");
            break;
        case f::gemma: {
            // No system role: system text is prepended to the next user turn.
            std::string system;
            for (const auto& m : chat) {
                if (m.role == "system") {
                    system += trim(m.content);
                    continue;
                }
                const std::string_view role = m.role == "assistant" ? "model" : std::string_view(m.role);
                put("<start_of_turn>", role, "\n");
                if (!system.empty() && role != "model") {
                    put(system, "\n\n");
                    system.clear();
                }
                put(trim(m.content), "<end_of_turn>\n");
            }
            if (add) put("<start_of_turn>model\n");
            break;
        }
        case f::orion: {
            std::string system;
            for (const auto& m : chat) {
                if (m.role == "system") {
                    system += m.content;
                } else if (m.role == "user") {
                    put("Human: ");
                    if (!system.empty()) {
                        put(system, "\n\n");
                        system.clear();
                    }
                    put(m.content, "\n\nAssistant: </s>");
                } else {
                    put(m.content, "</s>");
                }
            }
            break;
        }
        case f::openchat:
            for (const auto& m : chat) {
                if (m.role == "system") {
                    put(m.content, "<|end_of_turn|>");
                } else {
                    std::string role = m.role;
                    if (!role.empty() && role[0] >= 'a' && role[0] <= 'z') role[0] = static_cast<char>(role[0] - 32);
                    put("GPT4 Correct ", role, ": ", m.content, "<|end_of_turn|>");
                }
            }
            if (add) put("GPT4 Correct Assistant:");
            break;
        case f::vicuna:
        case f::vicuna_orca:
            for (const auto& m : chat) {
                if (m.role == "system") {
                    if (tmpl.format == f::vicuna_orca) put("SYSTEM: ", m.content, "\n");
                    else put(m.content, "\n\n");
                } else if (m.role == "user") {
                    put("USER: ", m.content, "\n");
                } else if (m.role == "assistant") {
                    put("ASSISTANT: ", m.content, "</s>\n");
                }
            }
            if (add) put("ASSISTANT:");
            break;
        case f::deepseek:
            for (const auto& m : chat) {
                if (m.role == "system") put(m.content);
                else if (m.role == "user") put("### Instruction:\n", m.content, "\n");
                else if (m.role == "assistant") put("### Response:\n", m.content, "\n<|EOT|>\n");
            }
            if (add) put("### Response:\n");
            break;
        case f::command_r:
            for (const auto& m : chat) {
                if (m.role == "system") put("<|START_OF_TURN_TOKEN|><|SYSTEM_TOKEN|>", trim(m.content), "<|END_OF_TURN_TOKEN|>");
                else if (m.role == "user") put("<|START_OF_TURN_TOKEN|><|USER_TOKEN|>", trim(m.content), "<|END_OF_TURN_TOKEN|>");
                else if (m.role == "assistant")
                    put("<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>", trim(m.content), "<|END_OF_TURN_TOKEN|>");
            }
            if (add) put("<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>");
            break;
        case f::llama3:
            for (const auto& m : chat) put("<|start_header_id|>", m.role, "<|end_header_id|>\n\n", trim(m.content), "<|eot_id|>");
            if (add) put("<|start_header_id|>assistant<|end_header_id|>\n\n");
            break;
        case f::chatglm3:
            put("[gMASK]sop");
            for (const auto& m : chat) put("<|", m.role, "|>\n ", m.content);
            if (add) put("<|assistant|>");
            break;
        case f::chatglm4:
            put("[gMASK]<sop>");
            for (const auto& m : chat) put("<|", m.role, "|>\n", m.content);
            if (add) put("<|assistant|>\n");
            break;
        case f::glmedge:
            for (const auto& m : chat) put("<|", m.role, "|>\n", m.content);
            if (add) put("<|assistant|>");
            break;
        case f::minicpm:
            for (const auto& m : chat) {
                if (m.role == "user") put("<\xE7\x94\xA8\xE6\x88\xB7>", trim(m.content), "<AI>");  // <用户>
                else put(trim(m.content));
            }
            break;
        case f::deepseek2:
            for (const auto& m : chat) {
                if (m.role == "system") put(m.content, "\n\n");
                else if (m.role == "user") put("User: ", m.content, "\n\n");
                else if (m.role == "assistant")
                    put("Assistant: ", m.content, "<\xEF\xBD\x9C" "end\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>");
            }
            if (add) put("Assistant:");
            break;
        case f::deepseek3:
            for (const auto& m : chat) {
                if (m.role == "system") put(m.content, "\n\n");
                else if (m.role == "user") put("<\xEF\xBD\x9CUser\xEF\xBD\x9C>", m.content);
                else if (m.role == "assistant")
                    put("<\xEF\xBD\x9C" "Assistant\xEF\xBD\x9C>", m.content,
                        "<\xEF\xBD\x9C" "end\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>");
            }
            if (add) put("<\xEF\xBD\x9C" "Assistant\xEF\xBD\x9C>");
            break;
        case f::deepseek_ocr:
            for (const auto& m : chat) put(m.content);
            break;
        case f::exaone3:
        case f::exaone4:
            for (const auto& m : chat) {
                if (m.role == "system") put("[|system|]", trim(m.content), "[|endofturn|]\n");
                else if (m.role == "user") put("[|user|]", trim(m.content), "\n");
                else if (m.role == "assistant") put("[|assistant|]", trim(m.content), "[|endofturn|]\n");
                else if (m.role == "tool" && tmpl.format == f::exaone4) put("[|tool|]", trim(m.content), "[|endofturn|]\n");
            }
            if (add) put("[|assistant|]");
            break;
        case f::exaone_moe:
            for (const auto& m : chat)
                if (m.role == "system" || m.role == "user" || m.role == "assistant" || m.role == "tool")
                    put("<|", m.role, "|>\n", trim(m.content), "<|endofturn|>\n");
            if (add) put("<|assistant|>\n");
            break;
        case f::rwkv_world:
            for (std::size_t i = 0; i < chat.size(); ++i) {
                const auto& m = chat[i];
                if (m.role == "system") {
                    put("System: ", trim(m.content), "\n\n");
                } else if (m.role == "user") {
                    put("User: ", trim(m.content), "\n\n");
                    if (i + 1 == chat.size()) put("Assistant:");
                } else if (m.role == "assistant") {
                    put("Assistant: ", trim(m.content), "\n\n");
                }
            }
            break;
        case f::granite3:
            for (const auto& m : chat) {
                put("<|start_of_role|>", m.role, "<|end_of_role|>");
                if (m.role == "assistant_tool_call") put("<|tool_call|>");
                put(m.content, "<|end_of_text|>\n");
            }
            if (add) put("<|start_of_role|>assistant<|end_of_role|>");
            break;
        case f::granite4_0:
        case f::granite4_1:
            for (const auto& m : chat) {
                if (m.role == "assistant_tool_call") put("<|start_of_role|>assistant<|end_of_role|><|tool_call|>");
                else put("<|start_of_role|>", m.role, "<|end_of_role|>");
                put(m.content, "<|end_of_text|>\n");
            }
            if (add) put("<|start_of_role|>assistant<|end_of_role|>");
            break;
        case f::gigachat: {
            const bool has_system = !chat.empty() && chat[0].role == "system";
            put("<s>");
            if (has_system) put(chat[0].content, "<|message_sep|>");
            for (std::size_t i = has_system ? 1 : 0; i < chat.size(); ++i) {
                if (chat[i].role == "user")
                    put("user<|role_sep|>", chat[i].content, "<|message_sep|>available functions<|role_sep|>[]<|message_sep|>");
                else if (chat[i].role == "assistant")
                    put("assistant<|role_sep|>", chat[i].content, "<|message_sep|>");
            }
            if (add) put("assistant<|role_sep|>");
            break;
        }
        case f::megrez:
            for (const auto& m : chat) put("<|role_start|>", m.role, "<|role_end|>", m.content, "<|turn_end|>");
            if (add) put("<|role_start|>assistant<|role_end|>");
            break;
        case f::yandex: {
            constexpr std::string_view user = " \xD0\x9F\xD0\xBE\xD0\xBB\xD1\x8C\xD0\xB7\xD0\xBE\xD0\xB2\xD0\xB0\xD1\x82\xD0\xB5\xD0\xBB\xD1\x8C: ";  // " Пользователь: "
            constexpr std::string_view assistant = " \xD0\x90\xD1\x81\xD1\x81\xD0\xB8\xD1\x81\xD1\x82\xD0\xB5\xD0\xBD\xD1\x82:";  // " Ассистент:"
            for (const auto& m : chat) {
                if (m.role == "user") put(user, m.content, "\n\n");
                else if (m.role == "assistant") put(assistant, " ", m.content, "\n\n");
            }
            if (add) put(assistant, "[SEP]");
            break;
        }
        case f::bailing:
        case f::bailing_think:
            for (const auto& m : chat) put("<role>", m.role == "user" ? std::string("HUMAN") : detail::ascii_upper(m.role), "</role>", m.content);
            if (add) put("<role>ASSISTANT</role>", tmpl.format == f::bailing_think ? "<think>" : "");
            break;
        case f::bailing2:
            if (chat.empty() || chat[0].role != "system") put("<role>SYSTEM</role>detailed thinking off<|role_end|>");
            for (const auto& m : chat)
                put("<role>", m.role == "user" ? std::string("HUMAN") : detail::ascii_upper(m.role), "</role>", m.content, "<|role_end|>");
            if (add) put("<role>ASSISTANT</role>");
            break;
        case f::llama4:
            for (const auto& m : chat) put("<|header_start|>", m.role, "<|header_end|>\n\n", trim(m.content), "<|eot|>");
            if (add) put("<|header_start|>assistant<|header_end|>\n\n");
            break;
        case f::smolvlm:
            put("<|im_start|>");
            for (const auto& m : chat) {
                if (m.role == "system") put(m.content, "\n\n");
                else if (m.role == "user") put("User: ", m.content, "<end_of_utterance>\n");
                else put("Assistant: ", m.content, "<end_of_utterance>\n");
            }
            if (add) put("Assistant:");
            break;
        case f::dots1:
            for (const auto& m : chat) {
                if (m.role == "system") put("<|system|>", m.content, "<|endofsystem|>");
                else if (m.role == "user") put("<|userprompt|>", m.content, "<|endofuserprompt|>");
                else put("<|response|>", m.content, "<|endofresponse|>");
            }
            if (add) put("<|response|>");
            break;
        case f::hunyuan_moe:
            for (const auto& m : chat) {
                if (m.role == "system") put("<|startoftext|>", m.content, "<|extra_4|>");
                else if (m.role == "assistant") put(m.content, "<|eos|>");
                else put("<|startoftext|>", m.content, "<|extra_0|>");
            }
            break;
        case f::gpt_oss:
            for (const auto& m : chat) put("<|start|>", m.role, "<|message|>", m.content, m.role == "assistant" ? "<|return|>" : "<|end|>");
            if (add) put("<|start|>assistant");
            break;
        case f::hunyuan_dense: {
            constexpr std::string_view hy_assistant = "<\xEF\xBD\x9Chy_Assistant\xEF\xBD\x9C>";
            for (std::size_t i = 0; i < chat.size(); ++i) {
                const auto& m = chat[i];
                if (i == 0 && m.role == "system")
                    put(m.content, "<\xEF\xBD\x9Chy_place\xE2\x96\x81holder\xE2\x96\x81no\xE2\x96\x81" "3\xEF\xBD\x9C>");
                if (m.role == "assistant")
                    put(hy_assistant, m.content, "<\xEF\xBD\x9Chy_place\xE2\x96\x81holder\xE2\x96\x81no\xE2\x96\x81" "2\xEF\xBD\x9C>");
                else if (m.role == "user") put("<\xEF\xBD\x9Chy_User\xEF\xBD\x9C>", m.content, hy_assistant);
            }
            break;
        }
        case f::hunyuan_vl:
            put("<\xEF\xBD\x9Chy_begin\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>");
            for (std::size_t i = 0; i < chat.size(); ++i) {
                const auto& m = chat[i];
                if (i == 0 && m.role == "system") {
                    put(m.content, "<\xEF\xBD\x9Chy_place\xE2\x96\x81holder\xE2\x96\x81no\xE2\x96\x81" "3\xEF\xBD\x9C>");
                    continue;
                }
                if (m.role == "user") put(m.content, "<\xEF\xBD\x9Chy_User\xEF\xBD\x9C>");
                else if (m.role == "assistant") put(m.content, "<\xEF\xBD\x9Chy_Assistant\xEF\xBD\x9C>");
            }
            break;
        case f::kimi_k2:
            for (const auto& m : chat) {
                if (m.role == "system") put("<|im_system|>system<|im_middle|>");
                else if (m.role == "user") put("<|im_user|>user<|im_middle|>");
                else if (m.role == "assistant") put("<|im_assistant|>assistant<|im_middle|>");
                else if (m.role == "tool") put("<|im_system|>tool<|im_middle|>");
                put(m.content, "<|im_end|>");
            }
            if (add) put("<|im_assistant|>assistant<|im_middle|>");
            break;
        case f::seed_oss:
            for (const auto& m : chat)
                put("<seed:bos>", m.role, "\n", m.role == "assistant" ? trim(m.content) : std::string_view(m.content), "<seed:eos>");
            if (add) put("<seed:bos>assistant\n");
            break;
        case f::grok2:
            for (const auto& m : chat) {
                if (m.role == "system") put("System: ", trim(m.content), "<|separator|>\n\n");
                else if (m.role == "user") put("Human: ", trim(m.content), "<|separator|>\n\n");
                else if (m.role == "assistant") put("Assistant: ", m.content, "<|separator|>\n\n");
            }
            if (add) put("Assistant:");
            break;
        case f::pangu_embed: {
            // [unused9]<role>：<content>[unused10], role names in Chinese
            const auto turn = [&](std::string_view role_zh, std::string_view content) {
                put("[unused9]", role_zh, "\xEF\xBC\x9A", content, "[unused10]");
            };
            constexpr std::string_view sys = "\xE7\xB3\xBB\xE7\xBB\x9F", usr = "\xE7\x94\xA8\xE6\x88\xB7",
                                       asst = "\xE5\x8A\xA9\xE6\x89\x8B", tool = "\xE5\xB7\xA5\xE5\x85\xB7",
                                       func = "\xE6\x96\xB9\xE6\xB3\x95";
            for (std::size_t i = 0; i < chat.size(); ++i) {
                const auto& m = chat[i];
                if (i == 0 && m.role != "system") turn(sys, "");
                if (m.role == "system") turn(sys, m.content);
                else if (m.role == "user") turn(usr, m.content);
                else if (m.role == "assistant") turn(asst, m.content);
                else if (m.role == "tool") turn(tool, m.content);
                else if (m.role == "function") turn(func, m.content);
            }
            if (add) put("[unused9]", asst, "\xEF\xBC\x9A");
            break;
        }
        case f::solar_open:
            for (const auto& m : chat) put("<|begin|>", m.role, "<|content|>", m.content, "<|end|>");
            if (add) put("<|begin|>assistant");
            break;
        case f::unknown:
            throw error("text::apply_chat_template: unrecognised chat template (not one of llama.cpp's built-in "
                        "families); pass a family name such as \"chatml\" instead");
    }
    return o;
}

inline std::string apply_chat_template(std::string_view jinja_or_name, std::span<const chat_message> chat,
                                       bool add_assistant_prompt) {
    return apply_chat_template(detect_chat_template(jinja_or_name), chat, add_assistant_prompt);
}

}  // namespace text
QINFER_NAMESPACE_END
