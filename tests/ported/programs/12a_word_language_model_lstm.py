# pytorch/examples' word_language_model as it is, its LSTM over the pipeline of 12b (Corpus,
# batchify, bptt, repackage_hidden, clip_grad_norm_, SGD by hand) on Python's documentation.
import argparse
import math
import os
from pydoc_data.topics import topics

import torch
import torch.nn as nn
import torch.nn.functional as F

args = argparse.Namespace(model="LSTM", emsize=64, nhid=64, nlayers=2, lr=20.0, clip=0.25)
args.__dict__.update(epochs=4, batch_size=20, bptt=35, dropout=0.2)  # the example's flags
torch.manual_seed(1111)
device = torch.device("cpu")

names = sorted(topics)
for split, chosen in (("train", names[0:30]), ("valid", names[30:36]), ("test", names[36:42])):
    with open(f"{split}.txt", "w", encoding="utf8") as f:
        f.write("\n".join(topics[name] for name in chosen))


class Dictionary(object):
    def __init__(self):
        self.word2idx, self.idx2word = {}, []

    def add_word(self, word):
        if word not in self.word2idx:
            self.idx2word.append(word)
            self.word2idx[word] = len(self.idx2word) - 1
        return self.word2idx[word]

    def __len__(self):
        return len(self.idx2word)


class Corpus(object):
    def __init__(self, path):
        self.dictionary = Dictionary()
        for split in ("train", "valid", "test"):
            setattr(self, split, self.tokenize(os.path.join(path, f"{split}.txt")))

    def tokenize(self, path):
        with open(path, "r", encoding="utf8") as f:
            idss = []
            for line in f:
                ids = [self.dictionary.add_word(word) for word in line.split() + ["<eos>"]]
                idss.append(torch.tensor(ids).type(torch.int64))
        return torch.cat(idss)


class RNNModel(nn.Module):
    def __init__(self, rnn_type, ntoken, ninp, nhid, nlayers, dropout=0.5):
        super(RNNModel, self).__init__()
        self.ntoken = ntoken
        self.drop = nn.Dropout(dropout)
        self.encoder = nn.Embedding(ntoken, ninp)
        self.rnn = getattr(nn, rnn_type)(ninp, nhid, nlayers, dropout=dropout)
        self.decoder = nn.Linear(nhid, ntoken)
        self.rnn_type, self.nhid, self.nlayers = rnn_type, nhid, nlayers
        initrange = 0.1
        nn.init.uniform_(self.encoder.weight, -initrange, initrange)
        nn.init.zeros_(self.decoder.bias)
        nn.init.uniform_(self.decoder.weight, -initrange, initrange)

    def forward(self, input, hidden):
        emb = self.drop(self.encoder(input))
        output, hidden = self.rnn(emb, hidden)
        decoded = self.decoder(self.drop(output)).view(-1, self.ntoken)
        return F.log_softmax(decoded, dim=1), hidden

    def init_hidden(self, bsz):
        weight = next(self.parameters())
        shape = (self.nlayers, bsz, self.nhid)
        if self.rnn_type == "LSTM":
            return (weight.new_zeros(shape), weight.new_zeros(shape))
        return weight.new_zeros(shape)


def batchify(data, bsz):
    nbatch = data.size(0) // bsz  # how cleanly the data divides into bsz parts
    data = data.narrow(0, 0, nbatch * bsz)  # trim off the remainder
    return data.view(bsz, -1).t().contiguous().to(device)  # one column per batch row


def repackage_hidden(h):  # new Tensors for the hidden states, detached from their history
    if isinstance(h, torch.Tensor):
        return h.detach()
    return tuple(repackage_hidden(v) for v in h)


def get_batch(source, i):
    seq_len = min(args.bptt, len(source) - 1 - i)
    return source[i : i + seq_len], source[i + 1 : i + 1 + seq_len].view(-1)


corpus, eval_batch_size = Corpus("."), 10
train_data = batchify(corpus.train, args.batch_size)
val_data = batchify(corpus.valid, eval_batch_size)
test_data = batchify(corpus.test, eval_batch_size)
ntokens = len(corpus.dictionary)
print("tokens", len(corpus.train), len(corpus.valid), len(corpus.test), "vocabulary", ntokens)
print("batches", *(tuple(d.shape) for d in (train_data, val_data, test_data)))
model = RNNModel(args.model, ntokens, args.emsize, args.nhid, args.nlayers, args.dropout).to(device)
criterion = nn.NLLLoss()


def evaluate(data_source):
    model.eval()  # turns dropout off
    total_loss, hidden = 0.0, model.init_hidden(eval_batch_size)
    with torch.no_grad():
        for i in range(0, data_source.size(0) - 1, args.bptt):
            data, targets = get_batch(data_source, i)
            output, hidden = model(data, hidden)
            hidden = repackage_hidden(hidden)
            total_loss += len(data) * criterion(output, targets).item()
    return total_loss / (len(data_source) - 1)


def train():
    model.train()  # turns dropout on
    total_loss, hidden = 0.0, model.init_hidden(args.batch_size)
    for batch, i in enumerate(range(0, train_data.size(0) - 1, args.bptt)):
        data, targets = get_batch(train_data, i)
        model.zero_grad()  # starting each batch, detach the hidden state from the last one
        hidden = repackage_hidden(hidden)
        output, hidden = model(data, hidden)
        loss = criterion(output, targets)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)  # no exploding gradients
        for p in model.parameters():
            p.data.add_(p.grad, alpha=-lr)
        total_loss += loss.item()
    return total_loss / (batch + 1)


lr, best_val_loss = args.lr, None
for epoch in range(1, args.epochs + 1):
    train_loss, val_loss = train(), evaluate(val_data)
    train_ppl, val_ppl = math.exp(train_loss), math.exp(val_loss)
    print(f"| end of epoch {epoch:3d} | train ppl {train_ppl:8.2f} | valid ppl {val_ppl:8.2f}")
    if not best_val_loss or val_loss < best_val_loss:  # the example saves the whole model
        torch.save(model.state_dict(), "model.pt")
        best_val_loss = val_loss
    else:  # anneal the learning rate if no improvement has been seen on the validation set
        lr /= 4.0

model.load_state_dict(torch.load("model.pt"))
print(f"| End of training | test ppl {math.exp(evaluate(test_data)):8.2f}")
