"""The method composed for the nodes and CLIs: the codec, the text side channel, the fusion
block."""
