"""Analysis of a latent space z (N, zdim): embeddings, clusters, graph paths, trajectories, selections,
and the landscape of a run's maps (PCA of many generated maps, states, map PCs of every particle).

scikit-learn (k-means, Gaussian mixtures) and umap-learn are imported only by the
functions that need them.
"""

from .clustering import KMeansResult, auto_clusters, gaussian_mixture, kmeans
from .embedding import PCAResult, auto_neighbors, latent_norm, pca, umap_embedding
from .graph import GraphGapWarning, GraphPath, graph_path, knn_graph
from .landscape import Landscape, analyze_landscape
from .regions import Regions, read_region
from .selection import box_select, lasso_select, range_select, selection_latent
from .tour import Trajectory, order_anchors, shortest_tour, trajectory
from .trajectories import interpolate, pc_traversal

__all__ = [
    "GraphGapWarning",
    "GraphPath",
    "KMeansResult",
    "Landscape",
    "PCAResult",
    "Regions",
    "Trajectory",
    "analyze_landscape",
    "auto_clusters",
    "auto_neighbors",
    "box_select",
    "gaussian_mixture",
    "graph_path",
    "interpolate",
    "kmeans",
    "knn_graph",
    "lasso_select",
    "latent_norm",
    "pc_traversal",
    "pca",
    "range_select",
    "read_region",
    "selection_latent",
    "order_anchors",
    "shortest_tour",
    "trajectory",
    "umap_embedding",
]
