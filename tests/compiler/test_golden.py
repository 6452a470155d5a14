"""Golden graphs: the rewritten code of one SDXL transformer block, one Flux double and one single block
(and the single block in the SDPA form).

A change to the rewrite shows up here as a reviewable diff. Regenerate with
`EXPECTTEST_ACCEPT=1 python -m pytest tests/compiler/test_golden.py` and read the diff before committing.
"""

import torch
from expecttest import TestCase

from toma_fx.architectures import build

from .helpers import Recorder, readable, small


def _rewritten(block, *args, config=None, **kwargs) -> str:
    """Graph code of a block's merged graph: it selects destinations, or takes those given as an input
    when its reuse flag is set. `config`: `ToMAConfig` fields to change."""
    torch._dynamo.reset()
    rec = Recorder()
    backend = small(inner=rec, grid=(8, 8), **(config or {}))
    with torch.no_grad():
        torch.compile(block, backend=backend, fullgraph=True)(*args, **kwargs)
    torch._dynamo.reset()
    (graph,) = rec.graphs
    return readable(graph)


def _flux_inputs(model, tokens=64, text=8):
    torch.manual_seed(0)
    hidden = torch.randn(1, tokens, model.inner_dim)
    context = torch.randn(1, text, model.inner_dim)
    temb = torch.randn(1, model.inner_dim)
    ids = torch.cat(
        [
            torch.zeros(text, 3),
            torch.stack(
                torch.meshgrid(torch.zeros(1), torch.arange(8.0), torch.arange(8.0), indexing="ij"), -1
            ).reshape(-1, 3),
        ]
    )
    return hidden, context, temb, model.pos_embed(ids)


class TestGolden(TestCase):
    def test_sdxl_transformer_block(self):
        unet = build("sdxl", "tiny")
        block = unet.down_blocks[1].attentions[0].transformer_blocks[0]
        hidden, context = torch.randn(1, 64, 32), torch.randn(1, 8, 32)
        self.assertExpectedInline(
            _rewritten(block, hidden, encoder_hidden_states=context),
            """\
class GraphModule(torch.nn.Module):
    def forward(self, ...):
        norm_hidden_states: "f32[1, 64, 32]" = torch.nn.functional.layer_norm(l_hidden_states_, (32,), norm1.weight, norm1.bias, 1e-05);  norm1.weight = norm1.bias = None
        select: "i64[1, 32]" = toma_fx_ops_nodes_select(norm_hidden_states, ((8, 8), (4, 4), 0.5), (1, 0, 0, 0), toma_dst_0_0, toma_reuse_0_0, toma_salt_0_0, noise = 1.0, avoid = 0.5);  toma_dst_0_0 = toma_reuse_0_0 = toma_salt_0_0 = None
        weights = toma_fx_ops_nodes_weights(norm_hidden_states, select, ((8, 8), (4, 4), 0.5), (1, 0, 0, 0), 1000.0)
        merge: "f32[1, 32, 32]" = toma_fx_ops_nodes_merge(norm_hidden_states, weights, ((8, 8), (4, 4), 0.5), (1, 0, 0, 0));  norm_hidden_states = None
        query: "f32[1, 32, 32]" = torch._C._nn.linear(merge, attn1.to_q.weight, None);  attn1.to_q.weight = None
        key: "f32[1, 32, 32]" = torch._C._nn.linear(merge, attn1.to_k.weight, None);  attn1.to_k.weight = None
        value: "f32[1, 32, 32]" = torch._C._nn.linear(merge, attn1.to_v.weight, None);  merge = attn1.to_v.weight = None
        view: "f32[1, 32, 2, 16]" = query.view(1, -1, 2, 16);  query = None
        query_1: "f32[1, 2, 32, 16]" = view.transpose(1, 2);  view = None
        view_1: "f32[1, 32, 2, 16]" = key.view(1, -1, 2, 16);  key = None
        key_1: "f32[1, 2, 32, 16]" = view_1.transpose(1, 2);  view_1 = None
        view_2: "f32[1, 32, 2, 16]" = value.view(1, -1, 2, 16);  value = None
        value_1: "f32[1, 2, 32, 16]" = view_2.transpose(1, 2);  view_2 = None
        hidden_states: "f32[1, 2, 32, 16]" = torch._C._nn.scaled_dot_product_attention(query_1, key_1, value_1, attn_mask = None, dropout_p = 0.0, is_causal = False);  query_1 = key_1 = value_1 = None
        transpose_3: "f32[1, 32, 2, 16]" = hidden_states.transpose(1, 2);  hidden_states = None
        hidden_states_1: "f32[1, 32, 32]" = transpose_3.reshape(1, -1, 32);  transpose_3 = None
        hidden_states_2: "f32[1, 32, 32]" = hidden_states_1.to(torch.float32);  hidden_states_1 = None
        hidden_states_3: "f32[1, 32, 32]" = torch._C._nn.linear(hidden_states_2, attn1.to_out.0.weight, attn1.to_out.0.bias);  hidden_states_2 = attn1.to_out.0.weight = attn1.to_out.0.bias = None
        hidden_states_4: "f32[1, 32, 32]" = torch.nn.functional.dropout(hidden_states_3, 0.0, False, False);  hidden_states_3 = None
        hidden_states_5: "f32[1, 32, 32]" = hidden_states_4 / 1.0;  hidden_states_4 = None
        unmerge: "f32[1, 64, 32]" = toma_fx_ops_nodes_unmerge(hidden_states_5, weights, ((8, 8), (4, 4), 0.5), (1, 0, 0, 0));  hidden_states_5 = weights = None
        hidden_states_6: "f32[1, 64, 32]" = unmerge + l_hidden_states_;  unmerge = l_hidden_states_ = None
        norm_hidden_states_1: "f32[1, 64, 32]" = torch.nn.functional.layer_norm(hidden_states_6, (32,), norm2.weight, norm2.bias, 1e-05);  norm2.weight = norm2.bias = None
        weights_1 = toma_fx_ops_nodes_weights(norm_hidden_states_1, select, ((8, 8), (4, 4), 0.5), (1, 0, 0, 0), 1000.0)
        merge_1: "f32[1, 32, 32]" = toma_fx_ops_nodes_merge(norm_hidden_states_1, weights_1, ((8, 8), (4, 4), 0.5), (1, 0, 0, 0));  norm_hidden_states_1 = None
        query_2: "f32[1, 32, 32]" = torch._C._nn.linear(merge_1, attn2.to_q.weight, None);  merge_1 = attn2.to_q.weight = None
        key_2: "f32[1, 8, 32]" = torch._C._nn.linear(l_encoder_hidden_states_, attn2.to_k.weight, None);  attn2.to_k.weight = None
        value_2: "f32[1, 8, 32]" = torch._C._nn.linear(l_encoder_hidden_states_, attn2.to_v.weight, None);  l_encoder_hidden_states_ = attn2.to_v.weight = None
        view_3: "f32[1, 32, 2, 16]" = query_2.view(1, -1, 2, 16);  query_2 = None
        query_3: "f32[1, 2, 32, 16]" = view_3.transpose(1, 2);  view_3 = None
        view_4: "f32[1, 8, 2, 16]" = key_2.view(1, -1, 2, 16);  key_2 = None
        key_3: "f32[1, 2, 8, 16]" = view_4.transpose(1, 2);  view_4 = None
        view_5: "f32[1, 8, 2, 16]" = value_2.view(1, -1, 2, 16);  value_2 = None
        value_3: "f32[1, 2, 8, 16]" = view_5.transpose(1, 2);  view_5 = None
        hidden_states_7: "f32[1, 2, 32, 16]" = torch._C._nn.scaled_dot_product_attention(query_3, key_3, value_3, attn_mask = None, dropout_p = 0.0, is_causal = False);  query_3 = key_3 = value_3 = None
        transpose_7: "f32[1, 32, 2, 16]" = hidden_states_7.transpose(1, 2);  hidden_states_7 = None
        hidden_states_8: "f32[1, 32, 32]" = transpose_7.reshape(1, -1, 32);  transpose_7 = None
        hidden_states_9: "f32[1, 32, 32]" = hidden_states_8.to(torch.float32);  hidden_states_8 = None
        hidden_states_10: "f32[1, 32, 32]" = torch._C._nn.linear(hidden_states_9, attn2.to_out.0.weight, attn2.to_out.0.bias);  hidden_states_9 = attn2.to_out.0.weight = attn2.to_out.0.bias = None
        hidden_states_11: "f32[1, 32, 32]" = torch.nn.functional.dropout(hidden_states_10, 0.0, False, False);  hidden_states_10 = None
        hidden_states_12: "f32[1, 32, 32]" = hidden_states_11 / 1.0;  hidden_states_11 = None
        unmerge_1: "f32[1, 64, 32]" = toma_fx_ops_nodes_unmerge(hidden_states_12, weights_1, ((8, 8), (4, 4), 0.5), (1, 0, 0, 0));  hidden_states_12 = weights_1 = None
        hidden_states_13: "f32[1, 64, 32]" = unmerge_1 + hidden_states_6;  unmerge_1 = hidden_states_6 = None
        norm_hidden_states_2: "f32[1, 64, 32]" = torch.nn.functional.layer_norm(hidden_states_13, (32,), norm3.weight, norm3.bias, 1e-05);  norm3.weight = norm3.bias = None
        weights_2 = toma_fx_ops_nodes_weights(norm_hidden_states_2, select, ((8, 8), (4, 4), 0.5), (1, 0, 0, 0), 1000.0)
        merge_2: "f32[1, 32, 32]" = toma_fx_ops_nodes_merge(norm_hidden_states_2, weights_2, ((8, 8), (4, 4), 0.5), (1, 0, 0, 0));  norm_hidden_states_2 = None
        hidden_states_14: "f32[1, 32, 256]" = torch._C._nn.linear(merge_2, ff.net.0.proj.weight, ff.net.0.proj.bias);  merge_2 = ff.net.0.proj.weight = ff.net.0.proj.bias = None
        chunk = hidden_states_14.chunk(2, dim = -1);  hidden_states_14 = None
        hidden_states_15: "f32[1, 32, 128]" = chunk[0]
        gate: "f32[1, 32, 128]" = chunk[1];  chunk = None
        gelu: "f32[1, 32, 128]" = torch._C._nn.gelu(gate);  gate = None
        hidden_states_16: "f32[1, 32, 128]" = hidden_states_15 * gelu;  hidden_states_15 = gelu = None
        hidden_states_17: "f32[1, 32, 128]" = torch.nn.functional.dropout(hidden_states_16, 0.0, False, False);  hidden_states_16 = None
        hidden_states_18: "f32[1, 32, 32]" = torch._C._nn.linear(hidden_states_17, ff.net.2.weight, ff.net.2.bias);  hidden_states_17 = ff.net.2.weight = ff.net.2.bias = None
        unmerge_2: "f32[1, 64, 32]" = toma_fx_ops_nodes_unmerge(hidden_states_18, weights_2, ((8, 8), (4, 4), 0.5), (1, 0, 0, 0));  hidden_states_18 = weights_2 = None
        hidden_states_19: "f32[1, 64, 32]" = unmerge_2 + hidden_states_13;  unmerge_2 = hidden_states_13 = None
        return (hidden_states_19, select)""",
        )

    def test_flux_double_block(self):
        flux = build("flux", "tiny")
        hidden, context, temb, rope = _flux_inputs(flux)
        code = _rewritten(flux.transformer_blocks[0], hidden, context, temb, rope)
        self.assertExpectedInline(
            code,
            """\
class GraphModule(torch.nn.Module):
    def forward(self, ...):
        silu: "f32[1, 32]" = torch.nn.functional.silu(l_temb_, inplace = False)
        emb: "f32[1, 192]" = torch._C._nn.linear(silu, norm1.linear.weight, norm1.linear.bias);  silu = norm1.linear.weight = norm1.linear.bias = None
        chunk = emb.chunk(6, dim = 1);  emb = None
        shift_msa: "f32[1, 32]" = chunk[0]
        scale_msa: "f32[1, 32]" = chunk[1]
        gate_msa: "f32[1, 32]" = chunk[2]
        shift_mlp: "f32[1, 32]" = chunk[3]
        scale_mlp: "f32[1, 32]" = chunk[4]
        gate_mlp: "f32[1, 32]" = chunk[5];  chunk = None
        layer_norm: "f32[1, 64, 32]" = torch.nn.functional.layer_norm(l_hidden_states_, (32,), None, None, 1e-06)
        getitem_6: "f32[1, 1, 32]" = scale_msa[(slice(None, None, None), None)];  scale_msa = None
        add: "f32[1, 1, 32]" = 1 + getitem_6;  getitem_6 = None
        mul: "f32[1, 64, 32]" = layer_norm * add;  layer_norm = add = None
        getitem_7: "f32[1, 1, 32]" = shift_msa[(slice(None, None, None), None)];  shift_msa = None
        x: "f32[1, 64, 32]" = mul + getitem_7;  mul = getitem_7 = None
        silu_1: "f32[1, 32]" = torch.nn.functional.silu(l_temb_, inplace = False);  l_temb_ = None
        emb_1: "f32[1, 192]" = torch._C._nn.linear(silu_1, norm1_context.linear.weight, norm1_context.linear.bias);  silu_1 = norm1_context.linear.weight = norm1_context.linear.bias = None
        chunk_1 = emb_1.chunk(6, dim = 1);  emb_1 = None
        shift_msa_1: "f32[1, 32]" = chunk_1[0]
        scale_msa_1: "f32[1, 32]" = chunk_1[1]
        gate_msa_1: "f32[1, 32]" = chunk_1[2]
        shift_mlp_1: "f32[1, 32]" = chunk_1[3]
        scale_mlp_1: "f32[1, 32]" = chunk_1[4]
        gate_mlp_1: "f32[1, 32]" = chunk_1[5];  chunk_1 = None
        layer_norm_1: "f32[1, 8, 32]" = torch.nn.functional.layer_norm(l_encoder_hidden_states_, (32,), None, None, 1e-06)
        getitem_14: "f32[1, 1, 32]" = scale_msa_1[(slice(None, None, None), None)];  scale_msa_1 = None
        add_2: "f32[1, 1, 32]" = 1 + getitem_14;  getitem_14 = None
        mul_1: "f32[1, 8, 32]" = layer_norm_1 * add_2;  layer_norm_1 = add_2 = None
        getitem_15: "f32[1, 1, 32]" = shift_msa_1[(slice(None, None, None), None)];  shift_msa_1 = None
        x_1: "f32[1, 8, 32]" = mul_1 + getitem_15;  mul_1 = getitem_15 = None
        select: "i64[1, 32]" = toma_fx_ops_nodes_select(x, ((8, 8), (4, 4), 0.5), (1, 0, 0, 0), toma_dst_0_0, toma_reuse_0_0, toma_salt_0_0, noise = 1.0, avoid = 0.5);  toma_dst_0_0 = toma_reuse_0_0 = toma_salt_0_0 = None
        weights = toma_fx_ops_nodes_weights(x, select, ((8, 8), (4, 4), 0.5), (1, 0, 0, 0), 1000.0)
        merge: "f32[1, 32, 32]" = toma_fx_ops_nodes_merge(x, weights, ((8, 8), (4, 4), 0.5), (1, 0, 0, 0));  x = None
        query: "f32[1, 32, 32]" = torch._C._nn.linear(merge, attn.to_q.weight, attn.to_q.bias);  attn.to_q.weight = attn.to_q.bias = None
        key: "f32[1, 32, 32]" = torch._C._nn.linear(merge, attn.to_k.weight, attn.to_k.bias);  attn.to_k.weight = attn.to_k.bias = None
        value: "f32[1, 32, 32]" = torch._C._nn.linear(merge, attn.to_v.weight, attn.to_v.bias);  merge = attn.to_v.weight = attn.to_v.bias = None
        encoder_query: "f32[1, 8, 32]" = torch._C._nn.linear(x_1, attn.add_q_proj.weight, attn.add_q_proj.bias);  attn.add_q_proj.weight = attn.add_q_proj.bias = None
        encoder_key: "f32[1, 8, 32]" = torch._C._nn.linear(x_1, attn.add_k_proj.weight, attn.add_k_proj.bias);  attn.add_k_proj.weight = attn.add_k_proj.bias = None
        encoder_value: "f32[1, 8, 32]" = torch._C._nn.linear(x_1, attn.add_v_proj.weight, attn.add_v_proj.bias);  x_1 = attn.add_v_proj.weight = attn.add_v_proj.bias = None
        query_1: "f32[1, 32, 2, 16]" = query.unflatten(-1, (-1, 16));  query = None
        key_1: "f32[1, 32, 2, 16]" = key.unflatten(-1, (-1, 16));  key = None
        value_1: "f32[1, 32, 2, 16]" = value.unflatten(-1, (-1, 16));  value = None
        query_2: "f32[1, 32, 2, 16]" = torch.rms_norm(query_1, (16,), attn.norm_q.weight, 1e-06);  query_1 = attn.norm_q.weight = None
        key_2: "f32[1, 32, 2, 16]" = torch.rms_norm(key_1, (16,), attn.norm_k.weight, 1e-06);  key_1 = attn.norm_k.weight = None
        encoder_query_1: "f32[1, 8, 2, 16]" = encoder_query.unflatten(-1, (-1, 16));  encoder_query = None
        encoder_key_1: "f32[1, 8, 2, 16]" = encoder_key.unflatten(-1, (-1, 16));  encoder_key = None
        encoder_value_1: "f32[1, 8, 2, 16]" = encoder_value.unflatten(-1, (-1, 16));  encoder_value = None
        encoder_query_2: "f32[1, 8, 2, 16]" = torch.rms_norm(encoder_query_1, (16,), attn.norm_added_q.weight, 1e-06);  encoder_query_1 = attn.norm_added_q.weight = None
        encoder_key_2: "f32[1, 8, 2, 16]" = torch.rms_norm(encoder_key_1, (16,), attn.norm_added_k.weight, 1e-06);  encoder_key_1 = attn.norm_added_k.weight = None
        query_3: "f32[1, 40, 2, 16]" = torch.cat([encoder_query_2, query_2], dim = 1);  encoder_query_2 = query_2 = None
        key_3: "f32[1, 40, 2, 16]" = torch.cat([encoder_key_2, key_2], dim = 1);  encoder_key_2 = key_2 = None
        value_2: "f32[1, 40, 2, 16]" = torch.cat([encoder_value_1, value_1], dim = 1);  encoder_value_1 = value_1 = None
        cos: "f32[1, 72, 1, 16]" = l_image_rotary_emb_0_[(None, slice(None, None, None), None, slice(None, None, None))]
        sin: "f32[1, 72, 1, 16]" = l_image_rotary_emb_1_[(None, slice(None, None, None), None, slice(None, None, None))]
        cos_1: "f32[1, 72, 1, 16]" = cos.to(device(type='cpu'));  cos = None
        sin_1: "f32[1, 72, 1, 16]" = sin.to(device(type='cpu'));  sin = None
        reshape: "f32[1, 40, 2, 8, 2]" = query_3.reshape(1, 40, 2, -1, 2)
        unbind = reshape.unbind(-1);  reshape = None
        x_real: "f32[1, 40, 2, 8]" = unbind[0]
        x_imag: "f32[1, 40, 2, 8]" = unbind[1];  unbind = None
        neg: "f32[1, 40, 2, 8]" = -x_imag;  x_imag = None
        stack: "f32[1, 40, 2, 8, 2]" = torch.stack([neg, x_real], dim = -1);  neg = x_real = None
        x_rotated: "f32[1, 40, 2, 16]" = stack.flatten(3);  stack = None
        float_1: "f32[1, 40, 2, 16]" = query_3.float();  query_3 = None
        gather: "f32[1, 40, 1, 16]" = toma_fx_ops_nodes_gather(cos_1, select, ((8, 8), (4, 4), 0.5), (1, 8, 0, 0), 4);  cos_1 = None
        mul_2: "f32[1, 40, 2, 16]" = float_1 * gather;  float_1 = None
        float_2: "f32[1, 40, 2, 16]" = x_rotated.float();  x_rotated = None
        gather_1: "f32[1, 40, 1, 16]" = toma_fx_ops_nodes_gather(sin_1, select, ((8, 8), (4, 4), 0.5), (1, 8, 0, 0), 4);  sin_1 = None
        mul_3: "f32[1, 40, 2, 16]" = float_2 * gather_1;  float_2 = None
        add_4: "f32[1, 40, 2, 16]" = mul_2 + mul_3;  mul_2 = mul_3 = None
        out: "f32[1, 40, 2, 16]" = add_4.to(torch.float32);  add_4 = None
        cos_2: "f32[1, 72, 1, 16]" = l_image_rotary_emb_0_[(None, slice(None, None, None), None, slice(None, None, None))];  l_image_rotary_emb_0_ = None
        sin_2: "f32[1, 72, 1, 16]" = l_image_rotary_emb_1_[(None, slice(None, None, None), None, slice(None, None, None))];  l_image_rotary_emb_1_ = None
        cos_3: "f32[1, 72, 1, 16]" = cos_2.to(device(type='cpu'));  cos_2 = cos_3 = None
        sin_3: "f32[1, 72, 1, 16]" = sin_2.to(device(type='cpu'));  sin_2 = sin_3 = None
        reshape_1: "f32[1, 40, 2, 8, 2]" = key_3.reshape(1, 40, 2, -1, 2)
        unbind_1 = reshape_1.unbind(-1);  reshape_1 = None
        x_real_1: "f32[1, 40, 2, 8]" = unbind_1[0]
        x_imag_1: "f32[1, 40, 2, 8]" = unbind_1[1];  unbind_1 = None
        neg_1: "f32[1, 40, 2, 8]" = -x_imag_1;  x_imag_1 = None
        stack_1: "f32[1, 40, 2, 8, 2]" = torch.stack([neg_1, x_real_1], dim = -1);  neg_1 = x_real_1 = None
        x_rotated_1: "f32[1, 40, 2, 16]" = stack_1.flatten(3);  stack_1 = None
        float_3: "f32[1, 40, 2, 16]" = key_3.float();  key_3 = None
        mul_4: "f32[1, 40, 2, 16]" = float_3 * gather;  float_3 = gather = None
        float_4: "f32[1, 40, 2, 16]" = x_rotated_1.float();  x_rotated_1 = None
        mul_5: "f32[1, 40, 2, 16]" = float_4 * gather_1;  float_4 = gather_1 = None
        add_5: "f32[1, 40, 2, 16]" = mul_4 + mul_5;  mul_4 = mul_5 = None
        out_1: "f32[1, 40, 2, 16]" = add_5.to(torch.float32);  add_5 = None
        query_4: "f32[1, 2, 40, 16]" = out.permute(0, 2, 1, 3);  out = None
        key_4: "f32[1, 2, 40, 16]" = out_1.permute(0, 2, 1, 3);  out_1 = None
        value_3: "f32[1, 2, 40, 16]" = value_2.permute(0, 2, 1, 3);  value_2 = None
        out_2: "f32[1, 2, 40, 16]" = torch._C._nn.scaled_dot_product_attention(query = query_4, key = key_4, value = value_3, attn_mask = None, dropout_p = 0.0, is_causal = False, scale = None, enable_gqa = False);  query_4 = key_4 = value_3 = None
        out_3: "f32[1, 40, 2, 16]" = out_2.permute(0, 2, 1, 3);  out_2 = None
        hidden_states: "f32[1, 40, 32]" = out_3.flatten(2, 3);  out_3 = None
        hidden_states_1: "f32[1, 40, 32]" = hidden_states.to(torch.float32);  hidden_states = None
        split_with_sizes = hidden_states_1.split_with_sizes([8, 32], dim = 1);  hidden_states_1 = None
        encoder_hidden_states: "f32[1, 8, 32]" = split_with_sizes[0]
        hidden_states_2: "f32[1, 32, 32]" = split_with_sizes[1];  split_with_sizes = None
        contiguous: "f32[1, 32, 32]" = hidden_states_2.contiguous();  hidden_states_2 = None
        hidden_states_3: "f32[1, 32, 32]" = torch._C._nn.linear(contiguous, attn.to_out.0.weight, attn.to_out.0.bias);  contiguous = attn.to_out.0.weight = attn.to_out.0.bias = None
        hidden_states_4: "f32[1, 32, 32]" = torch.nn.functional.dropout(hidden_states_3, 0.0, False, False);  hidden_states_3 = None
        contiguous_1: "f32[1, 8, 32]" = encoder_hidden_states.contiguous();  encoder_hidden_states = None
        encoder_hidden_states_1: "f32[1, 8, 32]" = torch._C._nn.linear(contiguous_1, attn.to_add_out.weight, attn.to_add_out.bias);  contiguous_1 = attn.to_add_out.weight = attn.to_add_out.bias = None
        unsqueeze: "f32[1, 1, 32]" = gate_msa.unsqueeze(1);  gate_msa = None
        attn_output: "f32[1, 32, 32]" = unsqueeze * hidden_states_4;  unsqueeze = hidden_states_4 = None
        unmerge: "f32[1, 64, 32]" = toma_fx_ops_nodes_unmerge(attn_output, weights, ((8, 8), (4, 4), 0.5), (1, 0, 0, 0));  attn_output = weights = None
        hidden_states_5: "f32[1, 64, 32]" = l_hidden_states_ + unmerge;  l_hidden_states_ = unmerge = None
        norm_hidden_states: "f32[1, 64, 32]" = torch.nn.functional.layer_norm(hidden_states_5, (32,), None, None, 1e-06)
        getitem_26: "f32[1, 1, 32]" = scale_mlp[(slice(None, None, None), None)];  scale_mlp = None
        add_7: "f32[1, 1, 32]" = 1 + getitem_26;  getitem_26 = None
        mul_7: "f32[1, 64, 32]" = norm_hidden_states * add_7;  norm_hidden_states = add_7 = None
        getitem_27: "f32[1, 1, 32]" = shift_mlp[(slice(None, None, None), None)];  shift_mlp = None
        norm_hidden_states_1: "f32[1, 64, 32]" = mul_7 + getitem_27;  mul_7 = getitem_27 = None
        weights_1 = toma_fx_ops_nodes_weights(norm_hidden_states_1, select, ((8, 8), (4, 4), 0.5), (1, 0, 0, 0), 1000.0)
        merge_1: "f32[1, 32, 32]" = toma_fx_ops_nodes_merge(norm_hidden_states_1, weights_1, ((8, 8), (4, 4), 0.5), (1, 0, 0, 0));  norm_hidden_states_1 = None
        hidden_states_6: "f32[1, 32, 128]" = torch._C._nn.linear(merge_1, ff.net.0.proj.weight, ff.net.0.proj.bias);  merge_1 = ff.net.0.proj.weight = ff.net.0.proj.bias = None
        hidden_states_7: "f32[1, 32, 128]" = torch._C._nn.gelu(hidden_states_6, approximate = 'tanh');  hidden_states_6 = None
        hidden_states_8: "f32[1, 32, 128]" = torch.nn.functional.dropout(hidden_states_7, 0.0, False, False);  hidden_states_7 = None
        hidden_states_9: "f32[1, 32, 32]" = torch._C._nn.linear(hidden_states_8, ff.net.2.weight, ff.net.2.bias);  hidden_states_8 = ff.net.2.weight = ff.net.2.bias = None
        unsqueeze_1: "f32[1, 1, 32]" = gate_mlp.unsqueeze(1);  gate_mlp = None
        ff_output: "f32[1, 32, 32]" = unsqueeze_1 * hidden_states_9;  unsqueeze_1 = hidden_states_9 = None
        unmerge_1: "f32[1, 64, 32]" = toma_fx_ops_nodes_unmerge(ff_output, weights_1, ((8, 8), (4, 4), 0.5), (1, 0, 0, 0));  ff_output = weights_1 = None
        hidden_states_10: "f32[1, 64, 32]" = hidden_states_5 + unmerge_1;  hidden_states_5 = unmerge_1 = None
        unsqueeze_2: "f32[1, 1, 32]" = gate_msa_1.unsqueeze(1);  gate_msa_1 = None
        context_attn_output: "f32[1, 8, 32]" = unsqueeze_2 * encoder_hidden_states_1;  unsqueeze_2 = encoder_hidden_states_1 = None
        encoder_hidden_states_2: "f32[1, 8, 32]" = l_encoder_hidden_states_ + context_attn_output;  l_encoder_hidden_states_ = context_attn_output = None
        norm_encoder_hidden_states: "f32[1, 8, 32]" = torch.nn.functional.layer_norm(encoder_hidden_states_2, (32,), None, None, 1e-06)
        getitem_28: "f32[1, 1, 32]" = scale_mlp_1[(slice(None, None, None), None)];  scale_mlp_1 = None
        add_11: "f32[1, 1, 32]" = 1 + getitem_28;  getitem_28 = None
        mul_10: "f32[1, 8, 32]" = norm_encoder_hidden_states * add_11;  norm_encoder_hidden_states = add_11 = None
        getitem_29: "f32[1, 1, 32]" = shift_mlp_1[(slice(None, None, None), None)];  shift_mlp_1 = None
        norm_encoder_hidden_states_1: "f32[1, 8, 32]" = mul_10 + getitem_29;  mul_10 = getitem_29 = None
        hidden_states_11: "f32[1, 8, 128]" = torch._C._nn.linear(norm_encoder_hidden_states_1, ff_context.net.0.proj.weight, ff_context.net.0.proj.bias);  norm_encoder_hidden_states_1 = ff_context.net.0.proj.weight = ff_context.net.0.proj.bias = None
        hidden_states_12: "f32[1, 8, 128]" = torch._C._nn.gelu(hidden_states_11, approximate = 'tanh');  hidden_states_11 = None
        hidden_states_13: "f32[1, 8, 128]" = torch.nn.functional.dropout(hidden_states_12, 0.0, False, False);  hidden_states_12 = None
        hidden_states_14: "f32[1, 8, 32]" = torch._C._nn.linear(hidden_states_13, ff_context.net.2.weight, ff_context.net.2.bias);  hidden_states_13 = ff_context.net.2.weight = ff_context.net.2.bias = None
        unsqueeze_3: "f32[1, 1, 32]" = gate_mlp_1.unsqueeze(1);  gate_mlp_1 = None
        mul_11: "f32[1, 8, 32]" = unsqueeze_3 * hidden_states_14;  unsqueeze_3 = hidden_states_14 = None
        encoder_hidden_states_3: "f32[1, 8, 32]" = encoder_hidden_states_2 + mul_11;  encoder_hidden_states_2 = mul_11 = None
        return (encoder_hidden_states_3, hidden_states_10, select)""",
        )

    def test_flux_single_block(self):
        flux = build("flux", "tiny")
        hidden, context, temb, rope = _flux_inputs(flux)
        code = _rewritten(flux.single_transformer_blocks[0], hidden, context, temb, rope)
        self.assertExpectedInline(
            code,
            """\
class GraphModule(torch.nn.Module):
    def forward(self, ...):
        hidden_states: "f32[1, 72, 32]" = torch.cat([l_encoder_hidden_states_, l_hidden_states_], dim = 1);  l_encoder_hidden_states_ = l_hidden_states_ = None
        silu: "f32[1, 32]" = torch.nn.functional.silu(l_temb_, inplace = False);  l_temb_ = None
        emb: "f32[1, 96]" = torch._C._nn.linear(silu, norm.linear.weight, norm.linear.bias);  silu = norm.linear.weight = norm.linear.bias = None
        chunk = emb.chunk(3, dim = 1);  emb = None
        shift_msa: "f32[1, 32]" = chunk[0]
        scale_msa: "f32[1, 32]" = chunk[1]
        gate_msa: "f32[1, 32]" = chunk[2];  chunk = None
        layer_norm: "f32[1, 72, 32]" = torch.nn.functional.layer_norm(hidden_states, (32,), None, None, 1e-06)
        getitem_3: "f32[1, 1, 32]" = scale_msa[(slice(None, None, None), None)];  scale_msa = None
        add: "f32[1, 1, 32]" = 1 + getitem_3;  getitem_3 = None
        mul: "f32[1, 72, 32]" = layer_norm * add;  layer_norm = add = None
        getitem_4: "f32[1, 1, 32]" = shift_msa[(slice(None, None, None), None)];  shift_msa = None
        x: "f32[1, 72, 32]" = mul + getitem_4;  mul = getitem_4 = None
        select: "i64[1, 32]" = toma_fx_ops_nodes_select(x, ((8, 8), (4, 4), 0.5), (1, 8, 0, 0), toma_dst_0_0, toma_reuse_0_0, toma_salt_0_0, noise = 1.0, avoid = 0.5);  toma_dst_0_0 = toma_reuse_0_0 = toma_salt_0_0 = None
        weights = toma_fx_ops_nodes_weights(x, select, ((8, 8), (4, 4), 0.5), (1, 8, 0, 0), 1000.0)
        merge: "f32[1, 40, 32]" = toma_fx_ops_nodes_merge(x, weights, ((8, 8), (4, 4), 0.5), (1, 8, 0, 0));  x = None
        linear_1: "f32[1, 40, 128]" = torch._C._nn.linear(merge, proj_mlp.weight, proj_mlp.bias);  proj_mlp.weight = proj_mlp.bias = None
        mlp_hidden_states: "f32[1, 40, 128]" = torch._C._nn.gelu(linear_1, approximate = 'tanh');  linear_1 = None
        query: "f32[1, 40, 32]" = torch._C._nn.linear(merge, attn.to_q.weight, attn.to_q.bias);  attn.to_q.weight = attn.to_q.bias = None
        key: "f32[1, 40, 32]" = torch._C._nn.linear(merge, attn.to_k.weight, attn.to_k.bias);  attn.to_k.weight = attn.to_k.bias = None
        value: "f32[1, 40, 32]" = torch._C._nn.linear(merge, attn.to_v.weight, attn.to_v.bias);  merge = attn.to_v.weight = attn.to_v.bias = None
        query_1: "f32[1, 40, 2, 16]" = query.unflatten(-1, (-1, 16));  query = None
        key_1: "f32[1, 40, 2, 16]" = key.unflatten(-1, (-1, 16));  key = None
        value_1: "f32[1, 40, 2, 16]" = value.unflatten(-1, (-1, 16));  value = None
        query_2: "f32[1, 40, 2, 16]" = torch.rms_norm(query_1, (16,), attn.norm_q.weight, 1e-06);  query_1 = attn.norm_q.weight = None
        key_2: "f32[1, 40, 2, 16]" = torch.rms_norm(key_1, (16,), attn.norm_k.weight, 1e-06);  key_1 = attn.norm_k.weight = None
        cos: "f32[1, 72, 1, 16]" = l_image_rotary_emb_0_[(None, slice(None, None, None), None, slice(None, None, None))]
        sin: "f32[1, 72, 1, 16]" = l_image_rotary_emb_1_[(None, slice(None, None, None), None, slice(None, None, None))]
        cos_1: "f32[1, 72, 1, 16]" = cos.to(device(type='cpu'));  cos = None
        sin_1: "f32[1, 72, 1, 16]" = sin.to(device(type='cpu'));  sin = None
        reshape: "f32[1, 40, 2, 8, 2]" = query_2.reshape(1, 40, 2, -1, 2)
        unbind = reshape.unbind(-1);  reshape = None
        x_real: "f32[1, 40, 2, 8]" = unbind[0]
        x_imag: "f32[1, 40, 2, 8]" = unbind[1];  unbind = None
        neg: "f32[1, 40, 2, 8]" = -x_imag;  x_imag = None
        stack: "f32[1, 40, 2, 8, 2]" = torch.stack([neg, x_real], dim = -1);  neg = x_real = None
        x_rotated: "f32[1, 40, 2, 16]" = stack.flatten(3);  stack = None
        float_1: "f32[1, 40, 2, 16]" = query_2.float();  query_2 = None
        gather: "f32[1, 40, 1, 16]" = toma_fx_ops_nodes_gather(cos_1, select, ((8, 8), (4, 4), 0.5), (1, 8, 0, 0), 4);  cos_1 = None
        mul_1: "f32[1, 40, 2, 16]" = float_1 * gather;  float_1 = None
        float_2: "f32[1, 40, 2, 16]" = x_rotated.float();  x_rotated = None
        gather_1: "f32[1, 40, 1, 16]" = toma_fx_ops_nodes_gather(sin_1, select, ((8, 8), (4, 4), 0.5), (1, 8, 0, 0), 4);  sin_1 = None
        mul_2: "f32[1, 40, 2, 16]" = float_2 * gather_1;  float_2 = None
        add_2: "f32[1, 40, 2, 16]" = mul_1 + mul_2;  mul_1 = mul_2 = None
        out: "f32[1, 40, 2, 16]" = add_2.to(torch.float32);  add_2 = None
        cos_2: "f32[1, 72, 1, 16]" = l_image_rotary_emb_0_[(None, slice(None, None, None), None, slice(None, None, None))];  l_image_rotary_emb_0_ = None
        sin_2: "f32[1, 72, 1, 16]" = l_image_rotary_emb_1_[(None, slice(None, None, None), None, slice(None, None, None))];  l_image_rotary_emb_1_ = None
        cos_3: "f32[1, 72, 1, 16]" = cos_2.to(device(type='cpu'));  cos_2 = cos_3 = None
        sin_3: "f32[1, 72, 1, 16]" = sin_2.to(device(type='cpu'));  sin_2 = sin_3 = None
        reshape_1: "f32[1, 40, 2, 8, 2]" = key_2.reshape(1, 40, 2, -1, 2)
        unbind_1 = reshape_1.unbind(-1);  reshape_1 = None
        x_real_1: "f32[1, 40, 2, 8]" = unbind_1[0]
        x_imag_1: "f32[1, 40, 2, 8]" = unbind_1[1];  unbind_1 = None
        neg_1: "f32[1, 40, 2, 8]" = -x_imag_1;  x_imag_1 = None
        stack_1: "f32[1, 40, 2, 8, 2]" = torch.stack([neg_1, x_real_1], dim = -1);  neg_1 = x_real_1 = None
        x_rotated_1: "f32[1, 40, 2, 16]" = stack_1.flatten(3);  stack_1 = None
        float_3: "f32[1, 40, 2, 16]" = key_2.float();  key_2 = None
        mul_3: "f32[1, 40, 2, 16]" = float_3 * gather;  float_3 = gather = None
        float_4: "f32[1, 40, 2, 16]" = x_rotated_1.float();  x_rotated_1 = None
        mul_4: "f32[1, 40, 2, 16]" = float_4 * gather_1;  float_4 = gather_1 = None
        add_3: "f32[1, 40, 2, 16]" = mul_3 + mul_4;  mul_3 = mul_4 = None
        out_1: "f32[1, 40, 2, 16]" = add_3.to(torch.float32);  add_3 = None
        query_3: "f32[1, 2, 40, 16]" = out.permute(0, 2, 1, 3);  out = None
        key_3: "f32[1, 2, 40, 16]" = out_1.permute(0, 2, 1, 3);  out_1 = None
        value_2: "f32[1, 2, 40, 16]" = value_1.permute(0, 2, 1, 3);  value_1 = None
        out_2: "f32[1, 2, 40, 16]" = torch._C._nn.scaled_dot_product_attention(query = query_3, key = key_3, value = value_2, attn_mask = None, dropout_p = 0.0, is_causal = False, scale = None, enable_gqa = False);  query_3 = key_3 = value_2 = None
        out_3: "f32[1, 40, 2, 16]" = out_2.permute(0, 2, 1, 3);  out_2 = None
        hidden_states_1: "f32[1, 40, 32]" = out_3.flatten(2, 3);  out_3 = None
        hidden_states_2: "f32[1, 40, 32]" = hidden_states_1.to(torch.float32);  hidden_states_1 = None
        hidden_states_3: "f32[1, 40, 160]" = torch.cat([hidden_states_2, mlp_hidden_states], dim = 2);  hidden_states_2 = mlp_hidden_states = None
        gate: "f32[1, 1, 32]" = gate_msa.unsqueeze(1);  gate_msa = None
        linear_5: "f32[1, 40, 32]" = torch._C._nn.linear(hidden_states_3, proj_out.weight, proj_out.bias);  hidden_states_3 = proj_out.weight = proj_out.bias = None
        hidden_states_4: "f32[1, 40, 32]" = gate * linear_5;  gate = linear_5 = None
        unmerge: "f32[1, 72, 32]" = toma_fx_ops_nodes_unmerge(hidden_states_4, weights, ((8, 8), (4, 4), 0.5), (1, 8, 0, 0));  hidden_states_4 = weights = None
        hidden_states_5: "f32[1, 72, 32]" = hidden_states + unmerge;  hidden_states = unmerge = None
        encoder_hidden_states: "f32[1, 8, 32]" = hidden_states_5[(slice(None, None, None), slice(None, 8, None))]
        hidden_states_6: "f32[1, 64, 32]" = hidden_states_5[(slice(None, None, None), slice(8, None, None))];  hidden_states_5 = None
        return (encoder_hidden_states, hidden_states_6, select)""",
        )

    def test_flux_single_block_in_the_sdpa_form(self):
        """No weights node; the unmerge reads the site's input `x` as its metric, beside the destinations."""
        flux = build("flux", "tiny")
        hidden, context, temb, rope = _flux_inputs(flux)
        block = flux.single_transformer_blocks[0]
        code = _rewritten(block, hidden, context, temb, rope, config={"merge_form": "sdpa"})
        self.assertExpectedInline(
            code,
            """\
class GraphModule(torch.nn.Module):
    def forward(self, ...):
        hidden_states: "f32[1, 72, 32]" = torch.cat([l_encoder_hidden_states_, l_hidden_states_], dim = 1);  l_encoder_hidden_states_ = l_hidden_states_ = None
        silu: "f32[1, 32]" = torch.nn.functional.silu(l_temb_, inplace = False);  l_temb_ = None
        emb: "f32[1, 96]" = torch._C._nn.linear(silu, norm.linear.weight, norm.linear.bias);  silu = norm.linear.weight = norm.linear.bias = None
        chunk = emb.chunk(3, dim = 1);  emb = None
        shift_msa: "f32[1, 32]" = chunk[0]
        scale_msa: "f32[1, 32]" = chunk[1]
        gate_msa: "f32[1, 32]" = chunk[2];  chunk = None
        layer_norm: "f32[1, 72, 32]" = torch.nn.functional.layer_norm(hidden_states, (32,), None, None, 1e-06)
        getitem_3: "f32[1, 1, 32]" = scale_msa[(slice(None, None, None), None)];  scale_msa = None
        add: "f32[1, 1, 32]" = 1 + getitem_3;  getitem_3 = None
        mul: "f32[1, 72, 32]" = layer_norm * add;  layer_norm = add = None
        getitem_4: "f32[1, 1, 32]" = shift_msa[(slice(None, None, None), None)];  shift_msa = None
        x: "f32[1, 72, 32]" = mul + getitem_4;  mul = getitem_4 = None
        select: "i64[1, 32]" = toma_fx_ops_nodes_select(x, ((8, 8), (4, 4), 0.5), (1, 8, 0, 0), toma_dst_0_0, toma_reuse_0_0, toma_salt_0_0, noise = 1.0, avoid = 0.5);  toma_dst_0_0 = toma_reuse_0_0 = toma_salt_0_0 = None
        merge_sdpa: "f32[1, 40, 32]" = toma_fx_ops_nodes_merge_sdpa(x, select, ((8, 8), (4, 4), 0.5), (1, 8, 0, 0), 1000.0)
        linear_1: "f32[1, 40, 128]" = torch._C._nn.linear(merge_sdpa, proj_mlp.weight, proj_mlp.bias);  proj_mlp.weight = proj_mlp.bias = None
        mlp_hidden_states: "f32[1, 40, 128]" = torch._C._nn.gelu(linear_1, approximate = 'tanh');  linear_1 = None
        query: "f32[1, 40, 32]" = torch._C._nn.linear(merge_sdpa, attn.to_q.weight, attn.to_q.bias);  attn.to_q.weight = attn.to_q.bias = None
        key: "f32[1, 40, 32]" = torch._C._nn.linear(merge_sdpa, attn.to_k.weight, attn.to_k.bias);  attn.to_k.weight = attn.to_k.bias = None
        value: "f32[1, 40, 32]" = torch._C._nn.linear(merge_sdpa, attn.to_v.weight, attn.to_v.bias);  merge_sdpa = attn.to_v.weight = attn.to_v.bias = None
        query_1: "f32[1, 40, 2, 16]" = query.unflatten(-1, (-1, 16));  query = None
        key_1: "f32[1, 40, 2, 16]" = key.unflatten(-1, (-1, 16));  key = None
        value_1: "f32[1, 40, 2, 16]" = value.unflatten(-1, (-1, 16));  value = None
        query_2: "f32[1, 40, 2, 16]" = torch.rms_norm(query_1, (16,), attn.norm_q.weight, 1e-06);  query_1 = attn.norm_q.weight = None
        key_2: "f32[1, 40, 2, 16]" = torch.rms_norm(key_1, (16,), attn.norm_k.weight, 1e-06);  key_1 = attn.norm_k.weight = None
        cos: "f32[1, 72, 1, 16]" = l_image_rotary_emb_0_[(None, slice(None, None, None), None, slice(None, None, None))]
        sin: "f32[1, 72, 1, 16]" = l_image_rotary_emb_1_[(None, slice(None, None, None), None, slice(None, None, None))]
        cos_1: "f32[1, 72, 1, 16]" = cos.to(device(type='cpu'));  cos = None
        sin_1: "f32[1, 72, 1, 16]" = sin.to(device(type='cpu'));  sin = None
        reshape: "f32[1, 40, 2, 8, 2]" = query_2.reshape(1, 40, 2, -1, 2)
        unbind = reshape.unbind(-1);  reshape = None
        x_real: "f32[1, 40, 2, 8]" = unbind[0]
        x_imag: "f32[1, 40, 2, 8]" = unbind[1];  unbind = None
        neg: "f32[1, 40, 2, 8]" = -x_imag;  x_imag = None
        stack: "f32[1, 40, 2, 8, 2]" = torch.stack([neg, x_real], dim = -1);  neg = x_real = None
        x_rotated: "f32[1, 40, 2, 16]" = stack.flatten(3);  stack = None
        float_1: "f32[1, 40, 2, 16]" = query_2.float();  query_2 = None
        gather: "f32[1, 40, 1, 16]" = toma_fx_ops_nodes_gather(cos_1, select, ((8, 8), (4, 4), 0.5), (1, 8, 0, 0), 4);  cos_1 = None
        mul_1: "f32[1, 40, 2, 16]" = float_1 * gather;  float_1 = None
        float_2: "f32[1, 40, 2, 16]" = x_rotated.float();  x_rotated = None
        gather_1: "f32[1, 40, 1, 16]" = toma_fx_ops_nodes_gather(sin_1, select, ((8, 8), (4, 4), 0.5), (1, 8, 0, 0), 4);  sin_1 = None
        mul_2: "f32[1, 40, 2, 16]" = float_2 * gather_1;  float_2 = None
        add_2: "f32[1, 40, 2, 16]" = mul_1 + mul_2;  mul_1 = mul_2 = None
        out: "f32[1, 40, 2, 16]" = add_2.to(torch.float32);  add_2 = None
        cos_2: "f32[1, 72, 1, 16]" = l_image_rotary_emb_0_[(None, slice(None, None, None), None, slice(None, None, None))];  l_image_rotary_emb_0_ = None
        sin_2: "f32[1, 72, 1, 16]" = l_image_rotary_emb_1_[(None, slice(None, None, None), None, slice(None, None, None))];  l_image_rotary_emb_1_ = None
        cos_3: "f32[1, 72, 1, 16]" = cos_2.to(device(type='cpu'));  cos_2 = cos_3 = None
        sin_3: "f32[1, 72, 1, 16]" = sin_2.to(device(type='cpu'));  sin_2 = sin_3 = None
        reshape_1: "f32[1, 40, 2, 8, 2]" = key_2.reshape(1, 40, 2, -1, 2)
        unbind_1 = reshape_1.unbind(-1);  reshape_1 = None
        x_real_1: "f32[1, 40, 2, 8]" = unbind_1[0]
        x_imag_1: "f32[1, 40, 2, 8]" = unbind_1[1];  unbind_1 = None
        neg_1: "f32[1, 40, 2, 8]" = -x_imag_1;  x_imag_1 = None
        stack_1: "f32[1, 40, 2, 8, 2]" = torch.stack([neg_1, x_real_1], dim = -1);  neg_1 = x_real_1 = None
        x_rotated_1: "f32[1, 40, 2, 16]" = stack_1.flatten(3);  stack_1 = None
        float_3: "f32[1, 40, 2, 16]" = key_2.float();  key_2 = None
        mul_3: "f32[1, 40, 2, 16]" = float_3 * gather;  float_3 = gather = None
        float_4: "f32[1, 40, 2, 16]" = x_rotated_1.float();  x_rotated_1 = None
        mul_4: "f32[1, 40, 2, 16]" = float_4 * gather_1;  float_4 = gather_1 = None
        add_3: "f32[1, 40, 2, 16]" = mul_3 + mul_4;  mul_3 = mul_4 = None
        out_1: "f32[1, 40, 2, 16]" = add_3.to(torch.float32);  add_3 = None
        query_3: "f32[1, 2, 40, 16]" = out.permute(0, 2, 1, 3);  out = None
        key_3: "f32[1, 2, 40, 16]" = out_1.permute(0, 2, 1, 3);  out_1 = None
        value_2: "f32[1, 2, 40, 16]" = value_1.permute(0, 2, 1, 3);  value_1 = None
        out_2: "f32[1, 2, 40, 16]" = torch._C._nn.scaled_dot_product_attention(query = query_3, key = key_3, value = value_2, attn_mask = None, dropout_p = 0.0, is_causal = False, scale = None, enable_gqa = False);  query_3 = key_3 = value_2 = None
        out_3: "f32[1, 40, 2, 16]" = out_2.permute(0, 2, 1, 3);  out_2 = None
        hidden_states_1: "f32[1, 40, 32]" = out_3.flatten(2, 3);  out_3 = None
        hidden_states_2: "f32[1, 40, 32]" = hidden_states_1.to(torch.float32);  hidden_states_1 = None
        hidden_states_3: "f32[1, 40, 160]" = torch.cat([hidden_states_2, mlp_hidden_states], dim = 2);  hidden_states_2 = mlp_hidden_states = None
        gate: "f32[1, 1, 32]" = gate_msa.unsqueeze(1);  gate_msa = None
        linear_5: "f32[1, 40, 32]" = torch._C._nn.linear(hidden_states_3, proj_out.weight, proj_out.bias);  hidden_states_3 = proj_out.weight = proj_out.bias = None
        hidden_states_4: "f32[1, 40, 32]" = gate * linear_5;  gate = linear_5 = None
        unmerge_sdpa: "f32[1, 72, 32]" = toma_fx_ops_nodes_unmerge_sdpa(hidden_states_4, x, select, ((8, 8), (4, 4), 0.5), (1, 8, 0, 0), (1, 8, 0, 0), 1000.0);  hidden_states_4 = x = None
        hidden_states_5: "f32[1, 72, 32]" = hidden_states + unmerge_sdpa;  hidden_states = unmerge_sdpa = None
        encoder_hidden_states: "f32[1, 8, 32]" = hidden_states_5[(slice(None, None, None), slice(None, 8, None))]
        hidden_states_6: "f32[1, 64, 32]" = hidden_states_5[(slice(None, None, None), slice(8, None, None))];  hidden_states_5 = None
        return (encoder_hidden_states, hidden_states_6, select)""",
        )
