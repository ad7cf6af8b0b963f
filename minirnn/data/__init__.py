"""Corpora, vocabularies and batches: everything between a text file and (x, y) ids.

Host-side by design: every array here is a NumPy int array; the trainer moves
batches to the device.

    corpus = load_corpus("tinyshakespeare")             # found through $MINIRNN_DATA
    batches = StreamBatcher(corpus.train_ids, batch_size=32, seq_len=64)
    for x, y in batches:                                 # (N, T) int32 each
        ...
"""

from .batching import StreamBatcher, shrink_to_fit
from .corpus import (
    KNOWN_CORPORA, Corpus, CorpusNotFound, load_corpus, load_ptb, read_text, resolve_corpus,
)
from .moving import clipped_bce, copy_last_frame_bce, held_out_set, moving_squares
from .tasks import DATE_FORMATS, TASKS, Seq2SeqVocab, TaskData, encode_batch, exact_match, format_date, make_pairs
from .vocab import CharVocab, WordVocab, vocab_from_json, words_with_eos
from .windows import WindowBatcher

__all__ = [
    "CharVocab", "WordVocab", "vocab_from_json", "words_with_eos",
    "CorpusNotFound", "Corpus", "KNOWN_CORPORA", "resolve_corpus", "read_text",
    "load_ptb", "load_corpus",
    "StreamBatcher", "shrink_to_fit", "WindowBatcher",
    "TASKS", "DATE_FORMATS", "format_date", "make_pairs", "Seq2SeqVocab", "encode_batch",
    "TaskData", "exact_match",
    "moving_squares", "held_out_set", "clipped_bce", "copy_last_frame_bce",
]
