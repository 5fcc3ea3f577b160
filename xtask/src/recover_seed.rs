//! `cargo xtask recover-seed`: the article's weights, recovered from the table it printed.
//!
//! The article drew `Wx` and `Wy` with an unknown seed and `b = 0`, so the weights cannot be
//! re-drawn; they are pinned down by the outputs instead:
//! - `atanh(Y0) = X0·Wx`: per column of `Wx`, 4 equations in 3 unknowns, solved by weighted
//!   least squares, each equation weighted by the inverse of its uncertainty after `atanh`
//!   (half a float32 ulp of `y`, divided by `1 − y²`), so values near ±1 count for little.
//! - `atanh(Y1) − X1·Wx = Y0·Wy`: per column of `Wy`, 4 equations in 5 unknowns; the
//!   minimum-norm solution. A printed `1.` only says the pre-activation is above about 9
//!   (float32 saturation): that equation is dropped, and if the solution then falls short of
//!   saturating, it is added back asking for a pre-activation of 10.

// The table is typed as the article printed it, digit for digit, and the linear algebra reads
// best with indices.
#![allow(clippy::excessive_precision, clippy::needless_range_loop)]

use std::collections::HashMap;
use std::path::Path;

use anyhow::{ensure, Context, Result};
use safetensors::tensor::{Dtype, TensorView};

/// The article's inputs and printed outputs (float32, numpy's print).
const X0: [[f64; 3]; 4] = [[0., 1., 2.], [3., 4., 5.], [6., 7., 8.], [9., 0., 1.]];
const X1: [[f64; 3]; 4] = [[9., 8., 7.], [0., 0., 0.], [6., 5., 4.], [3., 2., 1.]];
const Y0: [[f32; 5]; 4] = [
    [-0.2964572, 0.82874775, -0.34216955, -0.75720584, 0.19011548],
    [-0.12842922, 0.99981797, 0.84704727, -0.99570125, 0.38665548],
    [0.04731077, 0.99999976, 0.99330056, -0.999933, 0.55339795],
    [0.70323634, 0.99309105, 0.99909431, -0.85363263, 0.7472108],
];
const Y1: [[f32; 5]; 4] = [
    [0.51955646, 1., 0.99999022, -0.99984968, -0.24616946],
    [
        -0.70553327,
        -0.11918639,
        0.48885304,
        0.08917919,
        -0.26579669,
    ],
    [-0.32477224, 0.99996376, 0.99933046, -0.99711186, 0.10981458],
    [-0.43738723, 0.91517633, 0.97817528, -0.91763324, 0.11047263],
];
const HIDDEN: usize = 5;

/// Pre-activation asked of a saturated output: tanh(10) is 1.0 in float32.
const SATURATED: f64 = 10.0;
/// Below this a pre-activation no longer rounds to 1.0 in float32.
const SATURATION_THRESHOLD: f64 = 9.1;

pub fn run(root: &Path) -> Result<()> {
    let (wx, wy) = recover()?;
    let worst = worst_error(&wx, &wy);
    println!("recovered Wx [3, 5] and Wy [5, 5]; worst |Y - table| in float32: {worst:.3e}");
    ensure!(
        worst <= 1e-6,
        "the recovered weights miss the table by {worst:.3e} (> 1e-6)"
    );
    let path = root.join("models/seed/article.safetensors");
    write(&path, &wx, &wy)?;
    println!("wrote {}", path.display());
    Ok(())
}

type Matrix = Vec<Vec<f64>>;

fn recover() -> Result<(Matrix, Matrix)> {
    // Wx, column by column.
    let mut wx = vec![vec![0.0; HIDDEN]; 3];
    for j in 0..HIDDEN {
        let rows: Vec<(Vec<f64>, f64, f64)> = (0..4)
            .map(|r| (X0[r].to_vec(), atanh(Y0[r][j]), weight(Y0[r][j])))
            .collect();
        let col = weighted_least_squares(&rows).context("Wx: X0 is rank-deficient")?;
        for i in 0..3 {
            wx[i][j] = col[i];
        }
    }
    // Wy, column by column: Y0·Wy[:, j] = atanh(Y1[:, j]) − X1·Wx[:, j].
    let y0: Vec<Vec<f64>> = Y0
        .iter()
        .map(|r| r.iter().map(|&v| v as f64).collect())
        .collect();
    let mut wy = vec![vec![0.0; HIDDEN]; HIDDEN];
    for j in 0..HIDDEN {
        let x_part = |r: usize| (0..3).map(|i| X1[r][i] * wx[i][j]).sum::<f64>();
        let mut rows: Vec<(Vec<f64>, f64)> = Vec::new();
        let mut saturated = Vec::new();
        for r in 0..4 {
            if Y1[r][j].abs() == 1.0 {
                saturated.push(r);
            } else {
                rows.push((y0[r].clone(), atanh(Y1[r][j]) - x_part(r)));
            }
        }
        let mut col = minimum_norm(&rows).context("Wy: Y0 is rank-deficient")?;
        let pre = |col: &[f64], r: usize| dot(&y0[r], col) + x_part(r);
        let short: Vec<usize> = saturated
            .into_iter()
            .filter(|&r| pre(&col, r) * (Y1[r][j] as f64) < SATURATION_THRESHOLD)
            .collect();
        if !short.is_empty() {
            for &r in &short {
                rows.push((y0[r].clone(), SATURATED * Y1[r][j] as f64 - x_part(r)));
            }
            col = minimum_norm(&rows).context("Wy: Y0 is rank-deficient")?;
        }
        for i in 0..HIDDEN {
            wy[i][j] = col[i];
        }
    }
    Ok((wx, wy))
}

fn atanh(y: f32) -> f64 {
    (y as f64).atanh()
}

/// Inverse uncertainty of `atanh(y)` when `y` is known to half a float32 ulp.
fn weight(y: f32) -> f64 {
    let half_ulp = (f32::from_bits(y.abs().to_bits() + 1) - y.abs()) as f64 / 2.0;
    let y = y as f64;
    (1.0 - y * y) / half_ulp
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Solves `min Σ w²(a·x − b)²` through the normal equations.
fn weighted_least_squares(rows: &[(Vec<f64>, f64, f64)]) -> Option<Vec<f64>> {
    let n = rows[0].0.len();
    let mut ata = vec![vec![0.0; n]; n];
    let mut atb = vec![0.0; n];
    for (a, b, w) in rows {
        let w2 = w * w;
        for i in 0..n {
            atb[i] += w2 * a[i] * b;
            for k in 0..n {
                ata[i][k] += w2 * a[i] * a[k];
            }
        }
    }
    solve(ata, atb)
}

/// The smallest `x` with `a·x = b` for every row: `x = Aᵀ (A Aᵀ)⁻¹ b`.
fn minimum_norm(rows: &[(Vec<f64>, f64)]) -> Option<Vec<f64>> {
    let m = rows.len();
    let aat: Matrix = (0..m)
        .map(|i| (0..m).map(|k| dot(&rows[i].0, &rows[k].0)).collect())
        .collect();
    let y = solve(aat, rows.iter().map(|r| r.1).collect())?;
    let n = rows[0].0.len();
    Some(
        (0..n)
            .map(|i| (0..m).map(|r| rows[r].0[i] * y[r]).sum())
            .collect(),
    )
}

/// Gaussian elimination with partial pivoting; `None` when singular.
fn solve(mut a: Matrix, mut b: Vec<f64>) -> Option<Vec<f64>> {
    let n = b.len();
    for col in 0..n {
        let pivot = (col..n).max_by(|&i, &k| a[i][col].abs().total_cmp(&a[k][col].abs()))?;
        if a[pivot][col].abs() < 1e-300 {
            return None;
        }
        a.swap(col, pivot);
        b.swap(col, pivot);
        for row in col + 1..n {
            let f = a[row][col] / a[col][col];
            for k in col..n {
                a[row][k] -= f * a[col][k];
            }
            b[row] -= f * b[col];
        }
    }
    let mut x = vec![0.0; n];
    for row in (0..n).rev() {
        let s: f64 = (row + 1..n).map(|k| a[row][k] * x[k]).sum();
        x[row] = (b[row] - s) / a[row][row];
    }
    Some(x)
}

/// Runs the article's program in float32 with the recovered weights (rounded to float32, as
/// they are stored) and returns the worst difference from the printed table.
fn worst_error(wx: &Matrix, wy: &Matrix) -> f64 {
    let f32m = |m: &Matrix| -> Vec<Vec<f32>> {
        m.iter()
            .map(|r| r.iter().map(|&v| v as f32).collect())
            .collect()
    };
    let (wx, wy) = (f32m(wx), f32m(wy));
    let mut worst = 0.0f64;
    for r in 0..4 {
        let mut y0 = [0f32; HIDDEN];
        for j in 0..HIDDEN {
            let z: f32 = (0..3).map(|i| X0[r][i] as f32 * wx[i][j]).sum();
            y0[j] = z.tanh();
            worst = worst.max((y0[j] - Y0[r][j]).abs() as f64);
        }
        for j in 0..HIDDEN {
            let z: f32 = (0..3).map(|i| X1[r][i] as f32 * wx[i][j]).sum::<f32>()
                + (0..HIDDEN).map(|i| y0[i] * wy[i][j]).sum::<f32>();
            worst = worst.max((z.tanh() - Y1[r][j]).abs() as f64);
        }
    }
    worst
}

/// Writes the model in the article's own form (`Wx`, `Wy`, `b`) with its inputs and the
/// printed table as the expected outputs, so `rnn check` can hold a run against the article.
fn write(path: &Path, wx: &Matrix, wy: &Matrix) -> Result<()> {
    let bytes = |rows: Vec<Vec<f32>>| -> Vec<u8> {
        rows.iter()
            .flatten()
            .flat_map(|v| v.to_le_bytes())
            .collect()
    };
    let to32 = |m: &[Vec<f64>]| -> Vec<Vec<f32>> {
        m.iter()
            .map(|r| r.iter().map(|&v| v as f32).collect())
            .collect()
    };
    let x = |m: &[[f64; 3]; 4]| -> Vec<Vec<f32>> {
        m.iter()
            .map(|r| r.iter().map(|&v| v as f32).collect())
            .collect()
    };
    let y = |m: &[[f32; 5]; 4]| -> Vec<Vec<f32>> { m.iter().map(|r| r.to_vec()).collect() };
    let tensors: Vec<(&str, Vec<usize>, Vec<u8>)> = vec![
        ("Wx", vec![3, HIDDEN], bytes(to32(wx))),
        ("Wy", vec![HIDDEN, HIDDEN], bytes(to32(wy))),
        ("b", vec![1, HIDDEN], bytes(vec![vec![0.0; HIDDEN]])),
        ("X0", vec![4, 3], bytes(x(&X0))),
        ("X1", vec![4, 3], bytes(x(&X1))),
        ("Y0", vec![4, HIDDEN], bytes(y(&Y0))),
        ("Y1", vec![4, HIDDEN], bytes(y(&Y1))),
    ];
    let views = tensors
        .iter()
        .map(|(name, shape, data)| Ok((*name, TensorView::new(Dtype::F32, shape.clone(), data)?)))
        .collect::<Result<Vec<_>>>()?;
    let metadata = HashMap::from([
        (
            "source".to_string(),
            "weights recovered by `cargo xtask recover-seed` from the table printed in \
             shared/seed/ARTICLE.md; X0, X1 are the article's inputs and Y0, Y1 its printed outputs"
                .to_string(),
        ),
        ("nonlinearity".to_string(), "tanh".to_string()),
    ]);
    let data = safetensors::serialize(views, Some(metadata))?;
    std::fs::create_dir_all(path.parent().context("no parent")?)?;
    std::fs::write(path, data).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
