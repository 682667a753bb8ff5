"""Small stand-in generators shared by the metric tests."""

import torch


class TinyG(torch.nn.Module):
    """A fixed random map z -> images in (-1, 1): an 'untrained generator' stand-in (the generator is
    an input to the metrics)."""

    def __init__(self, latent_dim=8, resolution=16, channels=1):
        super().__init__()
        self.latent_dim, self.shape = latent_dim, (channels, resolution, resolution)
        self.fc = torch.nn.Linear(latent_dim, channels * resolution * resolution)
        with torch.no_grad():
            self.fc.weight.copy_(torch.randn(self.fc.weight.shape, generator=torch.Generator().manual_seed(0)))
            self.fc.bias.zero_()

    def forward(self, z):
        return torch.tanh(self.fc(z)).view(-1, *self.shape)  # (N, C, H, W)
