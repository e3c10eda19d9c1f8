"""Revenue forecast: Monte Carlo over open and future deals, goals and pacing, backtests."""
