"""The chunked answer-only loss: the same loss and gradients as one pass, less memory."""

import torch

from api.finetune.answer_loss import answer_loss_sum


def setup(n=300, d=32, vocab=500):
    torch.manual_seed(0)
    head = torch.nn.Linear(d, vocab, bias=False)
    hidden = torch.randn(n, d, requires_grad=True)
    labels = torch.randint(0, vocab, (n,))
    return head, hidden, labels


def grads(chunk):
    head, hidden, labels = setup()
    loss = answer_loss_sum(head, hidden, labels, chunk=chunk)
    loss.backward()
    return loss.detach(), hidden.grad.clone(), head.weight.grad.clone()


def test_chunked_loss_and_gradients_match_one_pass():
    whole = grads(chunk=10_000)
    for chunk in (7, 64, 299):
        chunked = grads(chunk)
        for a, b in zip(whole, chunked, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_no_grad_evaluation_is_one_pass():
    head, hidden, labels = setup()
    with torch.no_grad():
        loss = answer_loss_sum(head, hidden, labels, chunk=8)
    expected = torch.nn.functional.cross_entropy(head(hidden), labels, reduction="sum")
    torch.testing.assert_close(loss, expected)


def test_chunks_keep_fewer_activations_for_the_backward_pass():
    saved = {}
    for chunk in (100_000, 64):
        head, hidden, labels = setup(n=2048, d=16, vocab=4096)
        sizes = []

        def pack(t, sizes=sizes):
            sizes.append(t.numel() * t.element_size())
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            answer_loss_sum(head, hidden, labels, chunk=chunk)
        saved[chunk] = sum(sizes)
    # one pass keeps the [2048, 4096] logits (32 MiB); chunks keep only their inputs
    assert saved[64] * 10 < saved[100_000]
