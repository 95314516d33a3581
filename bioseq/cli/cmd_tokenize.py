"""``bioseq tokenize encode | train-bpe | info | list``: use, train and inspect tokenizers."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import typer

from bioseq.cli import debug_enabled

HELP = "Encode sequences, train DNA BPE tokenizers, inspect tokenizer definitions."
app = typer.Typer(no_args_is_help=True, help=HELP)


def _fail(e: BaseException) -> typer.Exit:
    if debug_enabled():
        raise e
    msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
    typer.secho(f"error: {msg}", fg="red", err=True)
    return typer.Exit(1)


def _records(path: str, protein: bool) -> Iterator[tuple[str, object]]:
    """(name, sequence) per FASTA record: uint8 codes for nucleotides (streamed, validated by
    bioseq.io), text for proteins."""
    if not protein:
        from bioseq.io import read_fasta

        for rec in read_fasta(path):
            yield rec.name, rec.codes
        return
    import io

    from Bio.SeqIO.FastaIO import SimpleFastaParser

    from bioseq.io import open_binary

    with open_binary(path) as fh:
        n = 0
        for title, seq in SimpleFastaParser(io.TextIOWrapper(fh, encoding="ascii", errors="replace")):
            n += 1
            yield (title.split(None, 1) or [""])[0], seq
        if n == 0:
            raise ValueError(f"{path}: no FASTA records")


def _definition_path(out: Path) -> Path:
    """Where Tokenizer.save writes for ``-o out`` (a folder gets ``tokenizer.json``)."""
    return out if out.suffix == ".json" else out / "tokenizer.json"


@app.command()
def encode(
    source: str = typer.Argument(..., help="A sequence, or a FASTA file (plain/gz/bgzip/xz/bz2; '-' for stdin)."),
    tokenizer: str = typer.Option("dna-char", "--tokenizer", "-t", help="Tokenizer name or definition file."),
    modality: str = typer.Option(None, "--modality", "-m", help="Multi-omic tokenizers: dna, rna or protein."),
    special: bool = typer.Option(True, "--special/--no-special", help="Add the tokenizer's special tokens."),
    tokens: bool = typer.Option(False, "--tokens", help="Print token strings instead of ids."),
    json_out: bool = typer.Option(False, "--json", help="One JSON object per record: name, ids."),
    out: Path = typer.Option(None, "-o", "--out", help="Write here (atomically) instead of stdout."),
) -> None:
    """Encode a sequence or every record of a FASTA file: ``>name`` then space-separated ids."""
    from bioseq import alphabet
    from bioseq.io import SequenceFormatError, atomic_file
    from bioseq.io.atomic import check_output
    from bioseq.tokenization import CharTokenizer, MultiOmicTokenizer, TokenizerError, get_tokenizer

    try:
        tok = get_tokenizer(tokenizer)
        is_multi = isinstance(tok, MultiOmicTokenizer)
        mod = modality or (tok.default_modality if is_multi else None)
        protein = (isinstance(tok, CharTokenizer) and tok.molecule == "protein") or mod == "protein"
        if mod is not None and not is_multi:
            raise TokenizerError(f"--modality applies to multi-omic tokenizers, not {tok.name!r}")
        is_file = source == "-" or Path(source).is_file()
        if not is_file and ("/" in source or re.search(r"\.(fa|fasta|fna|faa|gz|xz|bz2)$", source, re.IGNORECASE)):
            raise FileNotFoundError(f"{source}: no such file (and not a sequence)")
        items = _records(source, protein) if is_file else iter([("", source)])

        def ids_of(seq) -> object:
            if is_multi:  # tagged segment: [CLS] <tag> ... [SEP]
                text = seq if isinstance(seq, str) else alphabet.decode(seq)
                return tok.encode(text, modality=mod, add_special_tokens=special)
            if isinstance(seq, str):
                return tok.encode(seq, add_special_tokens=special)
            body = tok.encode_codes(seq)  # FASTA codes straight to ids, no text round trip
            return tok.apply_template(body) if special else body

        def lines() -> Iterator[str]:
            for name, seq in items:
                try:
                    ids = ids_of(seq)
                except TokenizerError as e:
                    raise TokenizerError(f"{source}: record {name!r}: {e}" if is_file else str(e)) from None
                shown = tok.convert_ids_to_tokens(ids) if tokens else ids.tolist()
                if json_out:
                    yield json.dumps({"name": name, "tokens" if tokens else "ids": shown}) + "\n"
                else:
                    if is_file:
                        yield f">{name}\n"
                    yield " ".join(map(str, shown)) + "\n"

        check_output(out, [source] if is_file else [])
        from bioseq.tokenization.stream import streamable

        # FASTA files with character / k-mer tokenizers are streamed: bounded memory whatever the
        # record length (a chromosome's ids never sit in memory as one list or line).
        write_all = (_stream_lines(tok, source, special, tokens, json_out)
                     if is_file and not is_multi and not protein and streamable(tok) else lines())
        if out is None:
            for text in write_all:
                sys.stdout.write(text)
        else:
            with atomic_file(out) as tmp, open(tmp, "w") as fh:
                for text in write_all:
                    fh.write(text)
    except (TokenizerError, SequenceFormatError, FileNotFoundError, KeyError, ValueError) as e:
        raise _fail(e) from None


def _stream_lines(tok, source: str, special: bool, tokens: bool, json_out: bool) -> Iterator[str]:
    """The text ``encode`` writes for a FASTA file, in pieces (see bioseq.tokenization.stream):
    byte-identical to encoding each record whole."""
    import numpy as np

    from bioseq.tokenization import TokenizerError
    from bioseq.tokenization.stream import encode_fasta_stream

    def render(ids) -> list[str]:
        if tokens:
            shown = tok.convert_ids_to_tokens(ids)
            return [json.dumps(t) for t in shown] if json_out else shown
        return [str(i) for i in ids.tolist()]

    sep = ", " if json_out else " "
    specials = tok.apply_template(np.zeros(0, dtype=np.int64)) if special else np.zeros(0, dtype=np.int64)
    n_prefix = len(tok.template["prefix"]) if special else 0
    prefix, suffix = specials[:n_prefix], specials[n_prefix:]
    first, open_record = True, False  # first: no separator before a record's first token

    def close() -> str:
        tail = sep.join(render(suffix)) if len(suffix) else ""
        return ("" if first or not tail else sep) + tail + ("]}\n" if json_out else "\n")

    try:
        for name, ids in encode_fasta_stream(tok, source):
            if name is not None:  # a new record: close the last one, open this one with its prefix
                if open_record:
                    yield close()
                key = "tokens" if tokens else "ids"
                yield f'{{"name": {json.dumps(name)}, "{key}": [' if json_out else f">{name}\n"
                open_record, first, ids = True, True, prefix
            if len(ids):
                yield ("" if first else sep) + sep.join(render(ids))
                first = False
        if open_record:
            yield close()
    except TokenizerError as e:
        raise TokenizerError(f"{source}: {e}") from None


@app.command("train-bpe")
def train_bpe(
    fastas: list[Path] = typer.Argument(..., help="Genome FASTA files (plain/gz/bgzip/xz/bz2)."),
    out: Path = typer.Option(..., "-o", "--out", help="Tokenizer file to write (e.g. tokenizers/dna-bpe-4096.json)."),
    vocab_size: int = typer.Option(4096, "--vocab-size", min=1, help="Vocabulary size, specials and A C G T N included."),
    chunk_length: int = typer.Option(2000, "--chunk-length", min=1, help="Pseudo-sentence length in bases."),
    min_frequency: int = typer.Option(2, "--min-frequency", min=1, help="Minimum pair count to merge."),
    max_token_length: int = typer.Option(32, "--max-token-length", min=0, help="Longest token in bases (0: no limit)."),
    name: str = typer.Option(None, "--name", help="Tokenizer name (default dna-bpe-<vocab-size>)."),
) -> None:
    """Train a DNA BPE tokenizer with HF tokenizers on genome pseudo-sentences.

    Genomes are cut at ambiguous bases and every --chunk-length bases; there is no whitespace
    pre-tokenisation."""
    from bioseq.io import SequenceFormatError, read_fasta
    from bioseq.io.atomic import check_output
    from bioseq.tokenization import TokenizerError
    from bioseq.tokenization.bpe import train_bpe as train

    check_output(_definition_path(out), fastas)

    def genomes():
        for path in fastas:
            for rec in read_fasta(path):
                yield rec.codes

    try:
        tok = train(genomes(), vocab_size, chunk_length=chunk_length, min_frequency=min_frequency,
                    max_token_length=max_token_length or None, name=name)
    except (TokenizerError, SequenceFormatError, FileNotFoundError, ValueError) as e:
        raise _fail(e) from None
    path = tok.save(out)
    longest = max(len(t) for t in tok.vocab[12:]) if tok.vocab_size > 12 else 1
    typer.echo(f"wrote {path}: {tok.vocab_size} tokens, longest {longest} bases")


@app.command()
def info(
    name: str = typer.Argument(..., help="Tokenizer name or definition file."),
    json_out: bool = typer.Option(False, "--json", help="Print the full definition as JSON."),
) -> None:
    """Describe a tokenizer: type, size, special tokens and their ids, template, strand support."""
    from bioseq.tokenization import TokenizerError, get_tokenizer

    try:
        tok = get_tokenizer(name)
    except (TokenizerError, FileNotFoundError, KeyError) as e:
        raise _fail(e) from None
    if json_out:
        typer.echo(json.dumps(tok.to_dict(), indent=1))
        return
    specials = ", ".join(f"{role}={tok.special_tokens[role]}({tok.token_id(role)})" for role in tok.special_tokens)
    rc = tok.complement_map is not None
    lines = [
        f"name:          {tok.name}",
        f"type:          {tok.type_name}",
        f"vocab_size:    {tok.vocab_size}",
        f"special:       {specials}",
        f"template:      {' '.join([*map(tok.special_tokens.get, tok.template['prefix']), '<seq>', *map(tok.special_tokens.get, tok.template['suffix'])])}",
        f"regular ids:   {len(tok.regular_token_ids)} (random-replacement pool for masking)",
        f"reverse comp.: {'yes' if rc else 'no'}",
        f"first tokens:  {' '.join(tok.vocab[:24])}{' ...' if tok.vocab_size > 24 else ''}",
    ]
    typer.echo("\n".join(lines))


@app.command("list")
def list_() -> None:
    """Names accepted by --tokenizer (any path to a tokenizer file works too)."""
    from bioseq.tokenization import available_tokenizers

    typer.echo("\n".join(available_tokenizers()))


@app.command()
def export(
    name: str = typer.Argument(..., help="Tokenizer name or definition file."),
    out: Path = typer.Option(..., "-o", "--out", help="Where to write the definition (tokenizer.json format)."),
) -> None:
    """Write a tokenizer's definition file (how tokenizers/*.json are regenerated)."""
    from bioseq.io.atomic import check_output
    from bioseq.tokenization import TokenizerError, get_tokenizer

    check_output(_definition_path(out), [name] if Path(name).exists() else [])
    try:
        path = get_tokenizer(name).save(out)
    except (TokenizerError, FileNotFoundError, KeyError) as e:
        raise _fail(e) from None
    typer.echo(f"wrote {path}")
