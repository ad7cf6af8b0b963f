"""Producing text from trained models: sampling, search, and translation.

``sampling``: temperature, top-k, top-p (nucleus) and greedy draws from a language model.
``search``: greedy decoding and beam search over any step function.
``translate``: decoding source strings with a trained seq2seq model.
"""

from .sampling import SampleConfig, filter_logits, sample, sample_stream, validate_sampling
from .search import beam_sample_text, beam_search, greedy_decode, reorder_batch
from .translate import attention_weights, translate

__all__ = ["SampleConfig", "filter_logits", "validate_sampling", "sample", "sample_stream", "greedy_decode", "beam_search",
           "beam_sample_text", "reorder_batch", "translate", "attention_weights"]
