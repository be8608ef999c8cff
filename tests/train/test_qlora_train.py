"""QLoRA (`sft train --use_peft --load_in_4bit`, issue 25 part B) against transformers + peft, resume, refusals.

Loss curve: the same 20-step run as test_lora_train.py (shared init adapter, dropout 0, AdamW, clipping) with the
base's decoder projections quantised at load (NF4 + double quantisation, fp32 model and compute dtype). The
reference is transformers + peft on the DEQUANTISED base: every projection quantised and dequantised by
bitsandbytes' own CPU functions (bitsandbytes.functional.quantize_4bit / dequantize_4bit, blocksize 64, pinned
0.50.2; the tiny model's column counts are multiples of 64, where its CPU dequantiser follows the published algorithm,
see docs/arch/lora.md), which is the math a peft + bitsandbytes run does in fp32 compute. Embedding and LM head stay
unquantised (transformers' llm_int8_skip_modules default). Tolerance: per-step loss within 1e-4 relative (fp32 on
both sides; the double-quant offset is a mean whose fp32 summation order may differ by 1 ulp, which moves absmax
values by ~1e-7 relative), final adapter within 1e-4 max-abs.
"""
import json
import os
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from test_lora_train import STEPS, common, make_init_adapter, peft_file_name, reference_run
from train_test_util import SFT, make_tiny_model, read_log, run_sft

QLORA = ["--load_in_4bit", "True", "--bnb_4bit_quant_type", "nf4", "--bnb_4bit_use_double_quant", "True",
         "--bnb_4bit_compute_dtype", "float32"]
PROJ = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def dequantised_base(base, out, quant_type="nf4", double_quant=True):
    import bitsandbytes.functional as bnbf
    shutil.copytree(base, out)
    path = os.path.join(out, "model.safetensors")
    sd = load_file(path)
    for name, w in sd.items():
        if name.startswith("model.layers.") and name.split(".")[-2] in PROJ and name.endswith(".weight"):
            assert w.shape[-1] % 64 == 0, name
            q, st = bnbf.quantize_4bit(w.float().contiguous(), blocksize=64, compress_statistics=double_quant,
                                       quant_type=quant_type)
            sd[name] = bnbf.dequantize_4bit(q, st).to(w.dtype).contiguous()
            assert not torch.equal(sd[name], w)
    save_file(sd, path, metadata={"format": "pt"})
    return out


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    d = tmp_path_factory.mktemp("qlora")
    base = make_tiny_model(str(d / "base"))
    init = make_init_adapter(base, str(d / "init"))
    out, dump = str(d / "out"), str(d / "batches.jsonl")
    res = run_sft(common(base, out, *QLORA, "--adapter_name_or_path", init, "--save_steps", "10",
                         "--debug_dump_batches", dump))
    return d, base, init, out, dump, res.stdout


def test_qlora_loss_curve_matches_peft_on_the_dequantised_base(trained):
    d, base, init, out, dump, stdout = trained
    rows = [r for r in read_log(out) if "loss" in r]
    assert [r["step"] for r in rows] == list(range(1, STEPS + 1))
    pm, ref = reference_run(dequantised_base(base, str(d / "deq")), init, dump)
    worst = 0.0
    for r, x in zip(rows, ref):
        worst = max(worst, abs(r["loss"] - x) / abs(x))
        assert abs(r["loss"] - x) <= 1e-4 * abs(x), (r["step"], r["loss"], x)
    print(f"20-step QLoRA (NF4 + double quant) loss curve: max relative difference {worst:.3g}")
    # the quantised base is not the base: the unquantised reference differs (this test could fail)
    _, plain = reference_run(base, init, dump)
    assert max(abs(a - b) / abs(b) for a, b in zip(ref, plain)) > 1e-4
    ours = load_file(os.path.join(out, "adapter_model.safetensors"))
    ref_state = {peft_file_name(n): p.detach() for n, p in pm.named_parameters() if p.requires_grad}
    assert set(ours) == set(ref_state)
    assert max((ours[n] - p).abs().max().item() for n, p in ref_state.items()) <= 1e-4


def test_qlora_adapter_is_a_peft_adapter_of_the_unquantised_base(trained):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM
    d, base, init, out, dump, stdout = trained
    assert not os.path.exists(os.path.join(out, "model.safetensors"))  # the 4-bit base is never saved
    assert not os.path.exists(os.path.join(out, "checkpoint-10", "model.safetensors"))
    cfg = json.load(open(os.path.join(out, "adapter_config.json")))
    assert cfg["peft_type"] == "LORA" and cfg["base_model_name_or_path"] == base
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    pm = PeftModel.from_pretrained(model, out)
    logits = pm(input_ids=torch.tensor([[1, 2, 3, 4]])).logits
    assert torch.isfinite(logits).all()


def test_qlora_resume_is_bit_identical(trained, tmp_path):
    d, base, init, out, dump, stdout = trained
    resumed = str(tmp_path / "resumed")
    os.makedirs(resumed)
    shutil.copytree(os.path.join(out, "checkpoint-10"), os.path.join(resumed, "checkpoint-10"))
    res = run_sft(common(base, resumed, *QLORA, "--adapter_name_or_path", init, "--save_steps", "10",
                         "--resume_from_checkpoint", "last"))
    assert "resuming" in res.stdout
    a = open(os.path.join(out, "adapter_model.safetensors"), "rb").read()
    b = open(os.path.join(resumed, "adapter_model.safetensors"), "rb").read()
    assert a == b
    la = [r["loss"] for r in read_log(out) if "loss" in r][10:]
    lb = [r["loss"] for r in read_log(resumed) if "loss" in r][10:]
    assert la == lb


@pytest.mark.parametrize("extra,flag", [
    (["--load_in_4bit", "True"], "--load_in_4bit"),                                   # no --use_peft
    (["--use_peft", "--load_in_4bit", "--bnb_4bit_quant_type", "int8"], "--bnb_4bit_quant_type"),
    (["--use_peft", "--load_in_4bit", "--bnb_4bit_compute_dtype", "float16"], "--bnb_4bit_compute_dtype"),
    (["--use_peft", "--load_in_4bit", "--save_gguf", "q8_0"], "--save_gguf"),
])
def test_qlora_refusals_name_the_flag_and_write_nothing(tmp_path, extra, flag):
    from train_test_util import DATASET
    base = make_tiny_model(str(tmp_path / "base"))
    out = str(tmp_path / "out")
    res = run_sft(["--model_name_or_path", base, "--dataset_path", DATASET, "--output_dir", out, "--max_steps", "1",
                   *extra], check=False)
    assert res.returncode != 0
    err = res.stderr.strip()
    assert flag in err and len(err.splitlines()) == 1, err
    assert not os.path.exists(out)


def test_sft_merge_folds_a_qlora_adapter_into_the_bf16_base(trained, tmp_path):
    """A QLoRA adapter is an adapter of the unquantised base: sft merge writes base + delta in bf16, equal to peft's
    merge_and_unload on the unquantised fp32 base rounded to bf16 (within one bf16 rounding: 2^-8 relative)."""
    import subprocess
    from peft import PeftModel
    from transformers import AutoModelForCausalLM
    d, base, init, out, dump, stdout = trained
    merged = str(tmp_path / "merged")
    res = subprocess.run([SFT, "merge", "--model", base, "--adapter", out, "--output_dir", merged, "--torch_dtype",
                          "bfloat16"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    ours = load_file(os.path.join(merged, "model.safetensors"))
    ref = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32), out)
    ref = {k: v.detach() for k, v in ref.merge_and_unload().state_dict().items()}
    for name, t in ours.items():
        assert t.dtype == torch.bfloat16, name
        r = ref[name]
        assert (t.float() - r).abs().max().item() <= 2 ** -8 * r.abs().max().item() + 1e-6, name
