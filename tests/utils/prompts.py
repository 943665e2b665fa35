"""Prompts whose greedy answers from SmolLM2-135M do not depend on the CPU.

A tiny model's greedy choice can hang on a tenth of a logit, and CPUs with other SIMD
paths (AVX2 only, AVX-512, AMX, NEON) round their matmuls differently: "What is the
capital of France?" alone is a 0.1-logit toss between "The" and "L" at the first token,
and an AVX2-only EPYC answers it with a French ramble that never names Paris. With
"Answer in one sentence." the margin is 1.6 logits: Paris on Q4_1, Q8_0 and f16 alike.
"""

CAPITAL = "What is the capital of France? Answer in one sentence."
