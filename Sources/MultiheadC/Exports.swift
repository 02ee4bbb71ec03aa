import Multihead
