"""Loads the encoder of a splitmask checkpoint into plain PyTorch, reading the safetensors layout
by hand (no safetensors or timm package needed), and computes mean-pooled features.

    from load_checkpoint import load_encoder
    encoder, meta = load_encoder("runs/pretrain/checkpoint.safetensors")
    features = encoder(images).mean(dim=1)   # images (B, C, S, S), normalised as in training

The parameter names are timm's (patch_embed.proj.weight, blocks.0.attn.qkv.weight, norm.bias).
The model is not timm's as is: no class token, fixed sin-cos positions unless the config says
"learned", and the features are the mean of the normed tokens.

As a check (run by the test suite): compare with the features splitmask-features computed,
    /usr/bin/python3 load_checkpoint.py --checkpoint C --inputs inputs.npy --features features.npy
"""
import argparse
import json
import math
import struct
import sys

import numpy as np
import torch
import torch.nn as nn

DTYPES = {"F32": np.float32, "F64": np.float64, "I32": np.int32, "I64": np.int64, "U8": np.uint8}


def read_safetensors(path):
    """(tensors by name, metadata): an 8-byte little-endian header length, a JSON header, data."""
    with open(path, "rb") as f:
        blob = f.read()
    (header_len,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + header_len])
    data = blob[8 + header_len:]
    metadata = header.pop("__metadata__", {})
    tensors = {}
    for name, entry in header.items():
        begin, end = entry["data_offsets"]
        array = np.frombuffer(data[begin:end], dtype=DTYPES[entry["dtype"]]).reshape(entry["shape"])
        tensors[name] = torch.from_numpy(array.copy())
    return tensors, metadata


def sincos_position(width, grid):
    """MAE's fixed 2-D sin-cos table (grid*grid, width): the first half encodes the column."""
    quarter = width // 4
    omega = 1.0 / 10000 ** (torch.arange(quarter, dtype=torch.float64) / quarter)
    rows, cols = torch.meshgrid(torch.arange(grid, dtype=torch.float64),
                                torch.arange(grid, dtype=torch.float64), indexing="ij")
    parts = []
    for pos in (cols.flatten(), rows.flatten()):
        angle = pos[:, None] * omega[None, :]
        parts += [torch.sin(angle), torch.cos(angle)]
    return torch.cat(parts, dim=1).float()


class Block(nn.Module):
    def __init__(self, width, heads, mlp_width, eps):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(width, eps=eps)
        self.attn = nn.Module()
        self.attn.qkv = nn.Linear(width, 3 * width)
        self.attn.proj = nn.Linear(width, width)
        self.norm2 = nn.LayerNorm(width, eps=eps)
        self.mlp = nn.Module()
        self.mlp.fc1 = nn.Linear(width, mlp_width)
        self.mlp.fc2 = nn.Linear(mlp_width, width)

    def forward(self, x):
        b, n, d = x.shape
        h = self.heads
        q, k, v = self.attn.qkv(self.norm1(x)).reshape(b, n, 3, h, d // h).permute(2, 0, 3, 1, 4)
        weights = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(d // h), dim=-1)
        x = x + self.attn.proj((weights @ v).transpose(1, 2).reshape(b, n, d))
        return x + self.mlp.fc2(nn.functional.gelu(self.mlp.fc1(self.norm2(x))))


class Encoder(nn.Module):
    """The ViT encoder as splitmask builds it: patch embedding, positions, pre-norm blocks, norm."""

    def __init__(self, config):
        super().__init__()
        width, patch = config["width"], config["patch_size"]
        grid = config["image_size"] // patch
        eps = config["layer_norm_eps"]
        self.patch_embed = nn.Module()
        self.patch_embed.proj = nn.Conv2d(config["channels"], width, patch, stride=patch)
        if config["position"] == "learned":
            self.pos_embed = nn.Parameter(torch.zeros(1, grid * grid, width))
        else:
            self.register_buffer("pos_embed", sincos_position(width, grid)[None], persistent=False)
        self.blocks = nn.ModuleList(
            Block(width, config["heads"], config["mlp_ratio"] * width, eps)
            for _ in range(config["depth"]))
        self.norm = nn.LayerNorm(width, eps=eps)

    def forward(self, images):
        x = self.patch_embed.proj(images).flatten(2).transpose(1, 2) + self.pos_embed
        for block in self.blocks:
            x = block(x)
        return self.norm(x)  # (B, N, D)


def load_encoder(path):
    """(Encoder with the checkpoint's weights, metadata with its JSON fields decoded)."""
    tensors, metadata = read_safetensors(path)
    if metadata.get("format") != "splitmask.checkpoint":
        raise ValueError(f"{path}: not a splitmask checkpoint")
    json_fields = ("encoder", "objective_config", "groups", "options", "objective_options",
                   "config", "tokenizer", "run")
    meta = {k: json.loads(v) if k in json_fields else v for k, v in metadata.items()}
    # Format version 2 stores the encoder's sizes as `encoder`; version 1 had them in `config`.
    encoder = Encoder(meta["encoder"] if "encoder" in meta else meta["config"])
    state = encoder.state_dict()
    missing = [name for name in state if name not in tensors]
    if missing:
        raise ValueError(f"{path}: missing encoder tensors {missing}")
    encoder.load_state_dict({name: tensors[name] for name in state}, strict=True)
    return encoder.eval(), meta


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--inputs", required=True, help=".npy of normalised images (n, C, S, S)")
    parser.add_argument("--features", required=True, help=".npy of splitmask's features (n, D)")
    parser.add_argument("--tolerance", type=float, default=1e-4,
                        help="largest allowed |difference| / max |feature|")
    args = parser.parse_args()
    torch.set_num_threads(1)
    encoder, meta = load_encoder(args.checkpoint)
    images = torch.from_numpy(np.load(args.inputs))
    expected = torch.from_numpy(np.load(args.features))
    with torch.no_grad():
        features = encoder(images).mean(dim=1)
    error = (features - expected).abs().max().item() / expected.abs().max().item()
    print(f"{images.shape[0]} images, step {meta['step']}: PyTorch's features vs splitmask's, "
          f"max |difference| / max |feature| = {error:.2e} (tolerance {args.tolerance:.0e})")
    return 0 if error <= args.tolerance else 1


if __name__ == "__main__":
    sys.exit(main())
