"""An f64 llama forward pass in numpy over PyPI `gguf`'s reader, without activation
quantization: how far apart a model's top tokens "really" are where two quantized engines
(vouch-llm, llama.cpp) pick differently (docs/llm.md §8). Prints the log-probabilities of the
given token ids after the prompt.

    python numpy_llama_ref.py MODEL.gguf '[prompt ids]' '[token ids]'
"""
import json, sys
import numpy as np
from gguf import GGUFReader, GGMLQuantizationType
from gguf.quants import dequantize
path, ids, wanted = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
r = GGUFReader(path)
f = lambda n: r.fields[n].contents()
T = {}
for t in r.tensors:
    d = t.data
    if t.tensor_type != GGMLQuantizationType.F32: d = dequantize(d, t.tensor_type)
    T[t.name] = np.asarray(d, dtype=np.float64).reshape([int(x) for x in reversed(t.shape)])
E=int(f("llama.embedding_length")); H=int(f("llama.attention.head_count")); KV=int(f("llama.attention.head_count_kv")); L=int(f("llama.block_count"))
eps=float(f("llama.attention.layer_norm_rms_epsilon")); base=float(f("llama.rope.freq_base")) if "llama.rope.freq_base" in r.fields else 10000.
hd=E//H
rms=lambda x,w: x/np.sqrt(np.mean(x*x,axis=-1,keepdims=True)+eps)*w
def rope(x,pos):
    inv=base**(-np.arange(0,hd//2)*2.0/hd); ang=pos[:,None]*inv[None,:]
    c,s=np.cos(ang)[:,None,:],np.sin(ang)[:,None,:]
    a,b=x[...,0::2],x[...,1::2]
    out=np.empty_like(x); out[...,0::2]=a*c-b*s; out[...,1::2]=a*s+b*c; return out
n=len(ids); x=T["token_embd.weight"][ids]; pos=np.arange(n,dtype=np.float64); mask=np.triu(np.full((n,n),-np.inf),k=1)
for i in range(L):
    p=f"blk.{i}"; h=rms(x,T[p+".attn_norm.weight"])
    q=(h@T[p+".attn_q.weight"].T).reshape(n,H,hd); k=(h@T[p+".attn_k.weight"].T).reshape(n,KV,hd); v=(h@T[p+".attn_v.weight"].T).reshape(n,KV,hd)
    q,k=rope(q,pos),rope(k,pos); out=np.zeros((n,H,hd))
    for j in range(H):
        kh=j//(H//KV); s=q[:,j,:]@k[:,kh,:].T/np.sqrt(hd)+mask; s=np.exp(s-s.max(-1,keepdims=True)); s/=s.sum(-1,keepdims=True); out[:,j,:]=s@v[:,kh,:]
    x=x+out.reshape(n,E)@T[p+".attn_output.weight"].T
    h=rms(x,T[p+".ffn_norm.weight"]); g=h@T[p+".ffn_gate.weight"].T; u=h@T[p+".ffn_up.weight"].T
    x=x+(g/(1+np.exp(-g))*u)@T[p+".ffn_down.weight"].T
x=rms(x[-1],T["output_norm.weight"]); W=T.get("output.weight",T["token_embd.weight"]); lg=x@W.T
lse=lg.max()+np.log(np.exp(lg-lg.max()).sum())
for t in wanted:
    print(t, lg[t] - lse)
