"""A word-level language model with nn.TransformerEncoder, as the nn.Transformer tutorial trains one: embeddings,
sinusoidal positional encoding, a causal mask, dropout, gradient clipping, SGD with StepLR, then evaluation."""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

torch.manual_seed(0)
text = """From fairest creatures we desire increase, That thereby beauty's rose might never die, But as the riper
should by time decease, His tender heir might bear his memory: But thou contracted to thine own bright eyes, Feed'st
thy light's flame with self-substantial fuel, Making a famine where abundance lies, Thy self thy foe, to thy sweet
self too cruel""".split()
vocab = sorted(set(text))
ids = torch.tensor([vocab.index(w) for w in text])
print(len(vocab), ids.shape)


class PositionalEncoding(nn.Module):
    def __init__(self, d_model, dropout=0.1, max_len=64):
        super().__init__()
        self.dropout = nn.Dropout(p=dropout)
        position = torch.arange(max_len).unsqueeze(1)
        div_term = torch.exp(torch.arange(0, d_model, 2) * (-math.log(10000.0) / d_model))
        pe = torch.zeros(max_len, 1, d_model)
        pe[:, 0, 0::2] = torch.sin(position * div_term)
        pe[:, 0, 1::2] = torch.cos(position * div_term)
        self.register_buffer("pe", pe)

    def forward(self, x):
        return self.dropout(x + self.pe[:x.size(0)])


class TransformerModel(nn.Module):
    def __init__(self, ntoken, d_model, nhead, d_hid, nlayers, dropout=0.2):
        super().__init__()
        self.pos_encoder = PositionalEncoding(d_model, dropout)
        encoder_layers = nn.TransformerEncoderLayer(d_model, nhead, d_hid, dropout)
        self.transformer_encoder = nn.TransformerEncoder(encoder_layers, nlayers, enable_nested_tensor=False)
        self.embedding = nn.Embedding(ntoken, d_model)
        self.d_model = d_model
        self.linear = nn.Linear(d_model, ntoken)
        self.init_weights()

    def init_weights(self):
        initrange = 0.1
        self.embedding.weight.data.uniform_(-initrange, initrange)
        self.linear.bias.data.zero_()
        self.linear.weight.data.uniform_(-initrange, initrange)

    def forward(self, src, src_mask=None):
        src = self.embedding(src) * math.sqrt(self.d_model)
        src = self.pos_encoder(src)
        output = self.transformer_encoder(src, src_mask)
        return self.linear(output)


def batchify(data, bsz):
    seq_len = data.size(0) // bsz
    return data[:seq_len * bsz].view(bsz, seq_len).t().contiguous()


bptt = 8
data = batchify(ids, 4)
print(data.shape)
model = TransformerModel(len(vocab), 16, 2, 32, 2)
print(model.transformer_encoder.layers[0])
print(sum(p.numel() for p in model.parameters()))
criterion = nn.CrossEntropyLoss()
optimizer = torch.optim.SGD(model.parameters(), lr=5.0)
scheduler = torch.optim.lr_scheduler.StepLR(optimizer, 1.0, gamma=0.95)
for epoch in range(3):
    model.train()
    total = 0.0
    for i in range(0, data.size(0) - 1, bptt):
        seq_len = min(bptt, data.size(0) - 1 - i)
        src, target = data[i:i + seq_len], data[i + 1:i + 1 + seq_len].reshape(-1)
        mask = nn.Transformer.generate_square_subsequent_mask(seq_len)
        output = model(src, mask)
        loss = criterion(output.view(-1, len(vocab)), target)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.5)
        optimizer.step()
        total += loss.item()
    scheduler.step()
    print(f"epoch {epoch} lr {scheduler.get_last_lr()[0]:.4f} loss {total:.4f}")

model.eval()
with torch.no_grad():
    src = data[:-1]
    output = model(src, nn.Transformer.generate_square_subsequent_mask(src.size(0)))
    loss = F.cross_entropy(output.view(-1, len(vocab)), data[1:].reshape(-1))
    print(f"eval loss {loss.item():.4f} perplexity {math.exp(loss.item()):.3f}")
    print(output.argmax(-1)[:, 0])
    weights = model.transformer_encoder.layers[0].self_attn(model.embedding(src[:4]), model.embedding(src[:4]),
                                                          model.embedding(src[:4]))[1]
    print(weights[0])
