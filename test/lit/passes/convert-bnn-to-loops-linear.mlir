// RUN: %bnnc-opt %s -p 'convert-bnn-to-loops{vector_bits=512 registers=32}' | filecheck %s

// A float linear is lowered to an FMA kernel over register tiles of output
// features. Its weights are laid out at compile time in the order the kernel
// reads them: the full tiles tile-major ([tile][k][features]), the partial
// last tile as its own block only as wide as its vectors; the bias padded to
// whole vectors.

// At batch 1 the tiles are 2 vectors (32 features; 300 = 9 x 32 + 12) and a
// group of 8 tiles is computed at once: 16 accumulators, the loads of one k
// step from 8 sequential streams (one per tile block).
// CHECK-LABEL: func.func private @head_2_linear(
// CHECK-DAG: %[[W:.*]] = memref.get_global @{{.*}} : memref<9x3x32xf32>
// CHECK-DAG: %[[LAST:.*]] = memref.get_global @{{.*}} : memref<3x16xf32>
// CHECK-DAG: %[[B:.*]] = memref.get_global @{{.*}} : memref<1x304xf32>
// CHECK: scf.for
// CHECK: scf.for {{.*}} iter_args({{.*}}) -> (vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>) {
// CHECK-COUNT-16: vector.load %[[W]][%{{.*}}, %[[K:[^,]*]], %{{.*}}] : memref<9x3x32xf32>, vector<16xf32>
// CHECK: memref.load %{{.*}}[%{{.*}}, %[[K]]] : memref<1x3xf32>
// CHECK-COUNT-16: vector.fma
// CHECK-NOT: vector.fma
// Full vectors: the bias added, then one vector store each.
// CHECK: vector.load %[[B]]
// CHECK-NEXT: arith.addf
// CHECK-NEXT: vector.store
// The leftover full tile and the partial one (12 features) are the last
// group: 3 FMA chains, the partial tile's from its own block, its vector
// stored lane by lane.
// CHECK: scf.for
// CHECK-COUNT-2: vector.load %[[W]]
// CHECK-NEXT: vector.load %[[LAST]]
// CHECK-COUNT-3: vector.fma
// CHECK-NOT: vector.fma
// CHECK-COUNT-2: vector.store
// CHECK-COUNT-12: memref.store
// CHECK-NOT: memref.store
// CHECK: func.return
func.func @head(%x: tensor<1x3xf32>) -> tensor<1x300xf32> {
  %w = arith.constant dense<0.5> : tensor<300x3xf32>
  %b = arith.constant dense<0.25> : tensor<300xf32>
  %y = bnn.linear %x, %w bias %b : tensor<300xf32> : tensor<1x3xf32>, tensor<300x3xf32> -> tensor<1x300xf32>
  func.return %y : tensor<1x300xf32>
}

// A batch of 3 rows shares each weight load: per k step the tile's 4 weight
// vectors are loaded once and used by 3 rows (12 FMAs), one tile at a time.
// CHECK-LABEL: func.func private @rows_1_linear(
// CHECK: scf.for {{.*}} iter_args({{.*}}) -> (vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>) {
// CHECK-COUNT-4: vector.load {{.*}} : memref<1x5x64xf32>, vector<16xf32>
// CHECK-NOT: vector.load
// CHECK: memref.load {{.*}} : memref<3x5xf32>
// CHECK-COUNT-4: vector.fma
// CHECK: memref.load {{.*}} : memref<3x5xf32>
// CHECK-COUNT-4: vector.fma
// CHECK: memref.load {{.*}} : memref<3x5xf32>
// CHECK-COUNT-4: vector.fma
// CHECK-NEXT: scf.yield
func.func @rows(%x: tensor<3x5xf32>) -> tensor<3x70xf32> {
  %w = arith.constant dense<0.5> : tensor<70x5xf32>
  %y = bnn.linear %x, %w : tensor<3x5xf32>, tensor<70x5xf32> -> tensor<3x70xf32>
  func.return %y : tensor<3x70xf32>
}
