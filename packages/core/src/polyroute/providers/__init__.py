"""The provider registry: each provider as a data row; adapter modules load on first use.

OpenAI-compatible vendors are rows over one adapter (``openai``) with their :class:`Quirks` (data, never
``if provider == ...`` in an adapter); native APIs have a module each (``anthropic``, ``gemini``, ``bedrock``,
``vertex``, ``cohere``). ``import polyroute`` loads no adapter and no SDK (botocore and google-auth load with the first
Bedrock or Vertex call).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from types import ModuleType
from typing import Any

from polyroute.providers._base import ProviderSpec, Quirks

_HOSTED_OPEN_MODELS = Quirks(
    max_tokens_field="max_tokens",
    developer_role=False,
    strict_tools=False,
    unsupported=frozenset({"audio", "modalities", "prediction", "service_tier", "store"}),
)
"""Together and Fireworks: open-weight models behind the same OpenAI-compatible surface."""

_COMMON_UNSUPPORTED = frozenset({"logit_bias", "top_logprobs", "logprobs", "audio", "modalities", "prediction"})

PROVIDERS: Mapping[str, ProviderSpec] = {
    spec.key: spec
    for spec in (
        ProviderSpec(
            "openai",
            "openai",
            "https://api.openai.com/v1",
            ("OPENAI_API_KEY",),
            "bearer",
            "openai",
            header_prefixes=("openai-",),
        ),
        ProviderSpec(
            # https://learn.microsoft.com/azure/ai-foundry/openai/reference: deployment URLs, api-version, api-key.
            "azure",
            "openai",
            None,
            ("AZURE_OPENAI_API_KEY", "AZURE_API_KEY"),
            "api-key",
            "azure",
            Quirks(deployment_urls=True, default_api_version="2024-10-21"),
            header_prefixes=("openai-",),
        ),
        ProviderSpec(
            # https://api-docs.deepseek.com: max_tokens, no developer role, n must be 1, reasoning_content.
            "deepseek",
            "openai",
            "https://api.deepseek.com/v1",
            ("DEEPSEEK_API_KEY",),
            "bearer",
            "deepseek",
            Quirks(
                max_tokens_field="max_tokens",
                developer_role=False,
                n=False,
                parallel_tool_calls=False,
                reasoning_in_history=True,
                unsupported=frozenset({"audio", "modalities", "prediction", "logit_bias", "service_tier"}),
            ),
        ),
        ProviderSpec(
            # https://docs.mistral.ai/api: max_tokens, random_seed, 9-character tool-call ids, no stream_options;
            # tool messages take content chunks (images too: ToolMessage.content in its OpenAPI spec).
            "mistral",
            "openai",
            "https://api.mistral.ai/v1",
            ("MISTRAL_API_KEY",),
            "bearer",
            "mistral",
            Quirks(
                max_tokens_field="max_tokens",
                developer_role=False,
                stream_options=False,
                tool_call_id_pattern="alnum9",
                seed_field="random_seed",
                strict_tools=False,
                unsupported=_COMMON_UNSUPPORTED | {"user", "service_tier", "store", "metadata"},
                tool_media=True,
            ),
        ),
        ProviderSpec(
            # https://console.groq.com/docs/openai: n must be 1; no logprobs, logit_bias, audio.
            "groq",
            "openai",
            "https://api.groq.com/openai/v1",
            ("GROQ_API_KEY",),
            "bearer",
            "groq",
            Quirks(n=False, developer_role=False, unsupported=_COMMON_UNSUPPORTED),
        ),
        ProviderSpec(
            # https://docs.together.ai/reference/chat-completions-1
            "together",
            "openai",
            "https://api.together.xyz/v1",
            ("TOGETHER_API_KEY", "TOGETHERAI_API_KEY"),
            "bearer",
            "togetherai",
            _HOSTED_OPEN_MODELS,
        ),
        ProviderSpec(
            # https://docs.fireworks.ai/api-reference/post-chatcompletions
            "fireworks",
            "openai",
            "https://api.fireworks.ai/inference/v1",
            ("FIREWORKS_API_KEY",),
            "bearer",
            "fireworks-ai",
            _HOSTED_OPEN_MODELS,
        ),
        ProviderSpec(
            # https://openrouter.ai/docs/api-reference/overview: max_tokens; its own `reasoning` ({effort, max_tokens,
            # exclude}) and `provider` routing preferences ({order, allow_fallbacks, only, sort…}) are body fields
            # passed through from extra_body or params; answers carry `reasoning`, read as reasoning_content.
            "openrouter",
            "openai",
            "https://openrouter.ai/api/v1",
            ("OPENROUTER_API_KEY",),
            "bearer",
            "openrouter",
            Quirks(max_tokens_field="max_tokens", developer_role=False),
        ),
        ProviderSpec(
            # https://docs.x.ai/docs/api-reference: OpenAI's surface; no logit_bias, no audio. Its reasoning models
            # refuse presence/frequency penalties and stop, and say so in a 400 (per model, so not refused here).
            "xai",
            "openai",
            "https://api.x.ai/v1",
            ("XAI_API_KEY",),
            "bearer",
            "xai",
            Quirks(unsupported=frozenset({"logit_bias", "audio", "modalities", "prediction", "service_tier"})),
        ),
        ProviderSpec(
            # https://inference-docs.cerebras.ai/resources/openai: frequency_penalty, presence_penalty, logit_bias,
            # parallel_tool_calls and service_tier are refused with a 400.
            "cerebras",
            "openai",
            "https://api.cerebras.ai/v1",
            ("CEREBRAS_API_KEY",),
            "bearer",
            "cerebras",
            Quirks(
                developer_role=False,
                parallel_tool_calls=False,
                unsupported=frozenset(
                    {"frequency_penalty", "presence_penalty", "logit_bias", "service_tier", "audio", "modalities"}
                ),
            ),
        ),
        ProviderSpec(
            # https://docs.perplexity.ai/guides/chat-completions-guide: Sonar answers with web search (top-level
            # `citations` / `search_results` pass through); no function tools, n, logprobs or logit_bias; its
            # search options (search_domain_filter, search_recency_filter, return_images…) are extra_body fields.
            "perplexity",
            "openai",
            "https://api.perplexity.ai",
            ("PERPLEXITY_API_KEY", "PPLX_API_KEY"),
            "bearer",
            "perplexity",
            Quirks(
                max_tokens_field="max_tokens",
                developer_role=False,
                n=False,
                strict_tools=False,
                unsupported=_COMMON_UNSUPPORTED | {"tools", "tool_choice", "parallel_tool_calls", "service_tier"},
            ),
        ),
        ProviderSpec(
            # https://deepinfra.com/docs/openai_api: open-weight models behind an OpenAI-compatible surface.
            "deepinfra",
            "openai",
            "https://api.deepinfra.com/v1/openai",
            ("DEEPINFRA_API_KEY", "DEEPINFRA_TOKEN"),
            "bearer",
            "deepinfra",
            _HOSTED_OPEN_MODELS,
        ),
        ProviderSpec(
            # https://github.com/ollama/ollama/blob/main/docs/openai.md: no key, no n, no logprobs.
            "ollama",
            "openai",
            "http://localhost:11434/v1",
            ("OLLAMA_API_KEY",),
            "bearer",
            None,
            Quirks(
                max_tokens_field="max_tokens",
                developer_role=False,
                n=False,
                strict_tools=False,
                unsupported=_COMMON_UNSUPPORTED | {"service_tier", "store", "metadata"},
            ),
            key_required=False,
        ),
        ProviderSpec(
            "openai-compatible",
            "openai",
            None,
            ("OPENAI_COMPATIBLE_API_KEY",),
            "bearer",
            None,
            Quirks(max_tokens_field="max_tokens"),
            key_required=False,
        ),
        ProviderSpec(
            "anthropic",
            "anthropic",
            "https://api.anthropic.com",
            ("ANTHROPIC_API_KEY",),
            "x-api-key",
            "anthropic",
            header_prefixes=("anthropic-",),
        ),
        ProviderSpec(
            "gemini",
            "gemini",
            "https://generativelanguage.googleapis.com",
            ("GEMINI_API_KEY", "GOOGLE_API_KEY"),
            "x-goog-api-key",
            "google",
            header_prefixes=("x-goog-",),
        ),
        ProviderSpec(
            # https://docs.cohere.com/reference/chat: the native v2 chat API (polyroute.providers.cohere).
            "cohere",
            "cohere",
            "https://api.cohere.com",
            ("CO_API_KEY", "COHERE_API_KEY"),
            "bearer",
            "cohere",
        ),
        ProviderSpec(
            # https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_Converse.html: SigV4 (botocore's
            # credential chain) or a Bedrock API key as a bearer token; the region comes from the deployment.
            "bedrock",
            "bedrock",
            "https://bedrock-runtime.{region}.amazonaws.com",
            ("AWS_BEARER_TOKEN_BEDROCK",),
            "bearer",
            "amazon-bedrock",
            key_required=False,
        ),
        ProviderSpec(
            # https://cloud.google.com/vertex-ai/generative-ai/docs: Gemini and Claude on {location}-aiplatform,
            # OAuth bearer tokens from google-auth.
            "vertex",
            "vertex",
            "https://{location}-aiplatform.googleapis.com",
            (),
            "none",
            "google-vertex",
            key_required=False,
            header_prefixes=("x-goog-",),
        ),
        ProviderSpec("mock", "mock", "http://mock.polyroute.invalid/v1", (), "none", None, key_required=False),
    )
}
"""Every provider polyroute can route to, by the key configs use."""

_ADAPTERS: dict[str, ModuleType] = {}


def adapter_for(spec: ProviderSpec) -> Any:
    """The adapter module for a provider, imported on first use."""
    module = _ADAPTERS.get(spec.adapter)
    if module is None:
        name = "openai" if spec.adapter == "mock" else spec.adapter
        module = importlib.import_module(f"polyroute.providers.{name}")
        _ADAPTERS[spec.adapter] = module
    return module


__all__ = ["PROVIDERS", "ProviderSpec", "Quirks", "adapter_for"]
