"""Continue training an exported minirnn char model in PyTorch on several processes or
machines (DistributedDataParallel), then bring it back to minirnn and sample from it.

    minirnn export runs/shakespeare/checkpoint.npz --to exported/model.safetensors
    torchrun --nproc_per_node 2 examples/ddp_continue.py \\
        --model exported/model.safetensors --data tinyshakespeare --steps 200 --out runs/ddp
    minirnn sample runs/ddp/checkpoint.npz --prompt "ROMEO:"

On several machines, start the same command on each with torchrun's usual flags:

    torchrun --nnodes 2 --node_rank 0 --master_addr 10.0.0.1 --master_port 29500 \\
        --nproc_per_node 4 examples/ddp_continue.py --model ... --out runs/ddp   # machine 0
    (and --node_rank 1 on machine 1; every machine needs the model file and the data)

The model is built from torch.nn's own layers, named in the export's JSON, and its
weights come from the .safetensors file: minirnn plays no part in the training. It
provides the corpus and its batches (the same parallel streams ``minirnn train`` reads)
and, at the end, the import and the sampling. Each process reads its own rows of every
batch; DDP averages the gradients, so every process holds the same weights after every
step, which the script shows by printing a SHA-256 of each process's weights.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import pathlib

import numpy as np
import torch
import torch.distributed as dist
from safetensors.torch import load_file, save_file
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from minirnn.data import StreamBatcher, read_text, resolve_corpus, vocab_from_json


OUTPUTS = ("model.safetensors", "model.json", "checkpoint.npz")  # what --out receives


class CharModel(nn.Module):
    """Embedding (or one-hot input), torch.nn.RNN/LSTM/GRU, dropout, Linear: the layers the
    export's JSON names, under the names its weights have."""

    def __init__(self, settings):
        super().__init__()
        layers, self.vocab_size = settings["torch_modules"], settings["model"]["vocab_size"]
        self.embed = nn.Embedding(**layers["embed"]["args"]) if "embed" in layers else None
        self.rnn = getattr(nn, layers["rnn"]["class"])(**layers["rnn"]["args"])
        self.drop = nn.Dropout(settings["model"]["dropout"])
        self.head = nn.Linear(**layers["head"]["args"])

    def forward(self, ids, state=None):
        if self.embed is None:
            x = nn.functional.one_hot(ids, self.vocab_size).to(self.head.weight.dtype)
        else:
            x = self.embed(ids)
        hs, state = self.rnn(x, state)                         # (N, T, H)
        return self.head(self.drop(hs)), state                 # (N, T, V)


def detach(state):
    return tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="a .safetensors file from minirnn export "
                                                   "(its .json beside it)")
    p.add_argument("--data", default="tinyshakespeare", help="corpus name or text file")
    p.add_argument("--steps", type=int, default=200, help="optimizer steps (default: 200)")
    p.add_argument("--batch-size", type=int, default=32, help="streams per process")
    p.add_argument("--seq-len", type=int, default=64, help="steps of truncated BPTT")
    p.add_argument("--lr", type=float, default=2e-3, help="Adam's step size")
    p.add_argument("--clip", type=float, default=5.0, help="largest gradient norm")
    p.add_argument("--val-fraction", type=float, default=0.1, help="the text's end, held out")
    p.add_argument("--eval-batches", type=int, default=4, help="validation batches per process")
    p.add_argument("--log-every", type=int, default=10, help="steps between loss reports")
    p.add_argument("--sample-length", type=int, default=200, help="characters sampled at the end")
    p.add_argument("--backend", default="gloo", choices=("gloo", "nccl"),
                   help="gloo (CPU, the default) or nccl (one GPU per process)")
    p.add_argument("--out", default="runs/ddp", help="folder for the trained weights, their "
                                                     "settings and checkpoint.npz")
    return p.parse_args()


def load_streams(args, settings, world):
    """The training and validation batches of the corpus, in the model's vocabulary."""
    vocab = vocab_from_json(settings["vocab"])
    if vocab.kind != "char":
        raise SystemExit(f"{args.model}: this example continues char models, not "
                         f"{vocab.kind!r} ones")
    ids = vocab.encode(read_text(resolve_corpus(args.data)))
    n_val = int(len(ids) * args.val_fraction)
    train, val = ids[:len(ids) - n_val], ids[len(ids) - n_val:]
    # One batch of world * N streams; process r reads rows r*N .. r*N + N - 1 of each.
    N = args.batch_size
    return (StreamBatcher(train, world * N, args.seq_len, drop_last=True),
            StreamBatcher(val, world * N, args.seq_len, drop_last=True), vocab)


def rows(batch, rank, n, device):
    x, y = batch
    part = slice(rank * n, (rank + 1) * n)
    return (torch.from_numpy(x[part].astype(np.int64)).to(device),
            torch.from_numpy(y[part].astype(np.int64)).to(device))


@torch.no_grad()
def validation_loss(model, batches, args, rank, device):
    """Mean loss (nats per char) over the first eval batches, the state carried, summed
    over every process's rows."""
    model.eval()
    total = torch.zeros(2, dtype=torch.float64, device=device)
    state = None
    for i in range(min(args.eval_batches, len(batches))):
        x, y = rows(batches.batch(i), rank, args.batch_size, device)
        logits, state = model(x, state)
        total[0] += nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten(),
                                                reduction="sum").double()
        total[1] += y.numel()
    dist.all_reduce(total)
    model.train()
    return (total[0] / total[1]).item()


def weights_digest(model):
    h = hashlib.sha256()
    for name, p in model.state_dict().items():
        h.update(name.encode())
        h.update(p.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def train(model, ddp, batches, val, args, rank, device):
    opt = torch.optim.Adam(ddp.parameters(), lr=args.lr)
    before = validation_loss(model, val, args, rank, device)
    if rank == 0:
        print(f"validation loss before: {before:.4f} nats/char", flush=True)
    state, index = None, 0
    for step in range(1, args.steps + 1):
        if index == len(batches):             # the end of the streams: start again from zeros
            state, index = None, 0
        x, y = rows(batches.batch(index), rank, args.batch_size, device)
        logits, state = ddp(x, state)
        loss = nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten())
        opt.zero_grad()
        loss.backward()                       # DDP averages the gradients of every process
        nn.utils.clip_grad_norm_(ddp.parameters(), args.clip)
        opt.step()
        state, index = detach(state), index + 1
        if step % args.log_every == 0 or step == args.steps:
            mean = loss.detach().clone()
            dist.all_reduce(mean)
            if rank == 0:
                print(f"step {step}: train loss {mean.item() / dist.get_world_size():.4f}",
                      flush=True)
    after = validation_loss(model, val, args, rank, device)
    if rank == 0:
        print(f"validation loss after: {after:.4f} nats/char "
              f"(perplexity {math.exp(before):.2f} -> {math.exp(after):.2f})", flush=True)


def save_and_sample(model, settings, args):
    """Process 0: write the weights for PyTorch, import them into minirnn, sample."""
    from minirnn.generate import sample
    from minirnn.interop import import_model
    from minirnn.training import load_model

    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    weights = out / "model.safetensors"
    save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
              str(weights), metadata={"format": "pt"})
    (out / "model.json").write_text(json.dumps(settings, ensure_ascii=False) + "\n",
                                    encoding="utf-8")
    checkpoint = import_model(weights, out)
    print(f"wrote {weights} and {checkpoint}", flush=True)
    mini, vocab, _ = load_model(checkpoint)
    text = sample(mini.eval(), vocab, prompt="\n", length=args.sample_length, seed=0)
    print(f"minirnn samples from {checkpoint}:\n{text}", flush=True)


def main():
    args = parse_args()
    there = [name for name in OUTPUTS if (pathlib.Path(args.out) / name).exists()]
    if there:  # a run's checkpoint is never overwritten
        raise SystemExit(f"{args.out} already holds {', '.join(there)}; choose another --out")
    for key, value in (("MASTER_ADDR", "127.0.0.1"), ("MASTER_PORT", "29500"),
                       ("RANK", "0"), ("WORLD_SIZE", "1"), ("LOCAL_RANK", "0")):
        os.environ.setdefault(key, value)     # plain `python` runs as one process
    dist.init_process_group(args.backend)
    rank, world = dist.get_rank(), dist.get_world_size()
    device = torch.device("cpu")
    if args.backend == "nccl":
        device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
        torch.cuda.set_device(device)
    settings_path = pathlib.Path(args.model).with_suffix(".json")
    settings = json.loads(settings_path.read_text(encoding="utf-8"))
    dtype = torch.float64 if settings["dtype"] == "float64" else torch.float32
    model = CharModel(settings).to(dtype)
    model.load_state_dict(load_file(args.model))   # every process reads the same weights
    model = model.to(device)
    batches, val, _ = load_streams(args, settings, world)
    ddp = DistributedDataParallel(model)
    if rank == 0:
        print(f"{world} processes, {len(batches)} batches of {world} x {args.batch_size} "
              f"streams x {args.seq_len} chars per pass", flush=True)
    train(model, ddp, batches, val, args, rank, device)
    print(f"rank {rank}: weights sha256 {weights_digest(model)}", flush=True)
    dist.barrier()
    if rank == 0:
        save_and_sample(model, settings, args)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
