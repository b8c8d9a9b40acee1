"""The training step the compile tests run eagerly and compiled: zero_grad, loss, backward, optimizer step."""


def train_step(model, opt, loss_fn):
    """`step(x, y)`: one optimizer step of `model` on `loss_fn(model(x), y)`; returns the loss."""
    def step(x, y):
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        return loss
    return step
