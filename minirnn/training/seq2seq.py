"""The seq2seq task: an encoder-decoder with attention on a task generated in code.

    cfg = Seq2SeqConfig(task="dates", time_budget=300, out="runs/dates")
    result = train(cfg)                  # progress bar, metrics.jsonl, checkpoint.npz
    model, vocab, meta = load_seq2seq("runs/dates/checkpoint.npz")

Every ``eval_every`` steps the held-out test set (1,000 pairs, fixed by the task's seed)
is scored twice: the teacher-forced loss (``val_loss``) and the exact match of greedy
decoding. At the end ``attention.png`` shows where the model looked for one test pair.
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import backend
from ..checkpoint import load_module
from ..data.tasks import TASKS, Seq2SeqVocab, TaskData, encode_batch, exact_match
from ..functional.cells import CELLS
from ..generate.translate import attention_weights, translate
from ..nn import Seq2Seq
from .config import RunConfig, positive, setting
from .loop import Task


@dataclass
class Seq2SeqConfig(RunConfig):
    """Every setting of a seq2seq run (the flags of ``minirnn seq2seq train``)."""
    task: str = setting("dates", "the task generated in code", choices=TASKS)
    cell: str = setting("lstm", "recurrent cell of the encoder and decoder",
                        choices=tuple(CELLS))
    bidirectional: bool = setting(True, "read the source both ways")
    embedding_dim: int = positive(32, "size of the symbol embedding")
    hidden_size: int = positive(64, "units of the encoder (each way) and the decoder")
    attention_size: int = positive(32, "size of the attention's hidden layer")
    batch_size: int = positive(64, "pairs per batch")
    n_train: int = positive(50_000, "training pairs generated")
    n_test: int = positive(1000, "held-out pairs the evaluation decodes")
    lr: float = positive(5e-3, "learning rate", may_change=True)
    eval_every: int = positive(250, "steps between evaluations", may_change=True)
    out: str = setting("runs/seq2seq", "run folder: checkpoint.npz, metrics.jsonl, "
                       "loss.png and attention.png go here", may_change=True)

    default_steps = 3000


def evaluate_exact_match(model, data, batch_size=500):
    """The fraction of the held-out pairs greedy decoding gets exactly right."""
    preds = []
    for i in range(0, len(data.test_pairs), batch_size):
        chunk = data.test_pairs[i:i + batch_size]
        preds += translate(model, data.vocab, [s for s, _ in chunk])
    return exact_match(preds, [t for _, t in data.test_pairs])


def _device(batch):
    return {k: backend.asarray(v) for k, v in batch.items()}


class Seq2SeqTask(Task):
    kind = "seq2seq"
    unit = "pairs"

    def __init__(self, cfg, log=print):
        super().__init__(cfg, log)
        self.data = TaskData(cfg.task, n_train=cfg.n_train, n_test=cfg.n_test, seed=cfg.seed)
        self.vocab = self.data.vocab

    def build_model(self):
        c = self.cfg
        return Seq2Seq(len(self.vocab), c.embedding_dim, c.hidden_size, c.attention_size,
                       c.cell, c.bidirectional, c.seed)

    def batch(self, step):
        return _device(self.data.batch(step, self.cfg.batch_size, self.cfg.seed))

    def items(self, batch):
        return int(batch["src"].shape[0])

    def evaluate(self, model, batch_size=500):
        pairs, total, count = self.data.test_pairs, 0.0, 0
        for i in range(0, len(pairs), batch_size):
            batch = _device(encode_batch(self.vocab, pairs[i:i + batch_size]))
            loss, _ = model.loss(batch)
            n = int(backend.to_numpy(batch["tgt_mask"]).sum())
            total, count = total + float(loss) * n, count + n
        return {"val_loss": total / count,
                "exact_match": evaluate_exact_match(model, self.data, batch_size)}

    def report(self, step, m):
        return (f"step {step}: exact match {m['exact_match']:.4f} on "
                f"{len(self.data.test_pairs)} held-out pairs, loss {m['val_loss']:.4f}")

    def figures(self, model, out):
        from ..viz import plot_attention
        source = self.data.test_pairs[0][0]
        output = translate(model, self.vocab, [source])[0]  # where it looked producing it
        weights = attention_weights(model, self.vocab, source, output)
        return [plot_attention(weights, source, output, out / "attention.png",
                               title=f"{source} -> {output}")]

    def describe(self, model):
        return (f"{self.cfg.task}: {len(self.data.train_pairs):,} training pairs, "
                f"{len(self.data.test_pairs):,} held out; vocabulary {len(self.vocab)}; "
                f"{model.num_parameters():,} parameters")

    def title(self):
        return f"seq2seq {self.cfg.task}: {self.cfg.cell} {self.cfg.hidden_size}"

    def metadata(self):
        return {"vocab": self.vocab.to_json()}


def load_seq2seq(path):
    """(model, vocab, metadata) from a checkpoint written by the seq2seq task."""
    model, _, meta = load_module(path, {"seq2seq": Seq2Seq})
    return model.eval(), Seq2SeqVocab.from_json(meta["vocab"]), meta
