//! Clustering of changed pixels into rectangular regions.
//!
//! Pixels are binned into 8×8 cells; cells that hold a changed pixel are joined with their 8
//! neighbours by union-find, so changed pixels up to one cell apart end up in one cluster (the
//! letters of a word, the lines of a paragraph). Each cluster's box is the exact bounding box of
//! its pixels, and boxes that then overlap or nearly touch are merged, so no pixel is reported
//! twice. Cost is one scan of the marked rows plus work proportional to the marked cells.

use rayon::prelude::*;

use crate::pass::{Plane, class, class_of};

/// Side of a clustering cell, in pixels.
const CELL: usize = 8;
/// Boxes closer than this (in pixels) after clustering are merged.
const MERGE_GAP: usize = 4;

/// A rectangle `[x0, x1) × [y0, y1)` in canvas pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Rect {
    pub(crate) x0: usize,
    pub(crate) y0: usize,
    pub(crate) x1: usize,
    pub(crate) y1: usize,
}

impl Rect {
    pub(crate) fn pixel(x: usize, y: usize) -> Self {
        Self {
            x0: x,
            y0: y,
            x1: x + 1,
            y1: y + 1,
        }
    }

    pub(crate) fn width(&self) -> usize {
        self.x1 - self.x0
    }

    pub(crate) fn height(&self) -> usize {
        self.y1 - self.y0
    }

    pub(crate) fn area(&self) -> usize {
        self.width() * self.height()
    }

    pub(crate) fn union(&self, other: &Self) -> Self {
        Self {
            x0: self.x0.min(other.x0),
            y0: self.y0.min(other.y0),
            x1: self.x1.max(other.x1),
            y1: self.y1.max(other.y1),
        }
    }

    /// Whether the two rectangles overlap or are less than `gap` pixels apart on both axes.
    fn near(&self, other: &Self, gap: usize) -> bool {
        self.x0 < other.x1 + gap
            && other.x0 < self.x1 + gap
            && self.y0 < other.y1 + gap
            && other.y0 < self.y1 + gap
    }

    /// Grown by `margin` on every side, clipped to `[0, width) × [0, height)`.
    pub(crate) fn grown(&self, margin: usize, width: usize, height: usize) -> Self {
        Self {
            x0: self.x0.saturating_sub(margin),
            y0: self.y0.saturating_sub(margin),
            x1: (self.x1 + margin).min(width),
            y1: (self.y1 + margin).min(height),
        }
    }
}

/// Boxes of the clusters of [`class::DIFF`] and [`class::FILL`] pixels inside the top-left
/// `width × height` of the plane, sorted top to bottom, left to right.
pub(crate) fn cluster(plane: &Plane, width: usize, height: usize) -> Vec<Rect> {
    let grid_w = width.div_ceil(CELL);
    // Marked cells of each cell row, sorted by column: sparse, because a screenshot pair
    // usually changes in a few places and a full-page grid has hundreds of thousands of cells.
    let rows: Vec<Vec<(usize, Rect)>> = (0..height.div_ceil(CELL))
        .into_par_iter()
        .map(|cy| {
            let ys = cy * CELL..((cy + 1) * CELL).min(height);
            if !ys.clone().any(|y| plane.marked_rows[y]) {
                return Vec::new();
            }
            let mut dense: Vec<Option<Rect>> = vec![None; grid_w];
            for y in ys.filter(|&y| plane.marked_rows[y]) {
                let bytes = &plane.bytes[y * plane.width..y * plane.width + width];
                for (x, &byte) in bytes.iter().enumerate() {
                    let c = class_of(byte);
                    if c == class::DIFF || c == class::FILL {
                        let cell = &mut dense[x / CELL];
                        let px = Rect::pixel(x, y);
                        *cell = Some(cell.map_or(px, |r| r.union(&px)));
                    }
                }
            }
            dense
                .into_iter()
                .enumerate()
                .filter_map(|(cx, r)| r.map(|r| (cx, r)))
                .collect()
        })
        .collect();

    // Cell ids: consecutive over the sparse rows.
    let mut first_id = Vec::with_capacity(rows.len() + 1);
    let mut total = 0;
    for row in &rows {
        first_id.push(total);
        total += row.len();
    }
    let mut sets = DisjointSets::new(total);
    for (cy, row) in rows.iter().enumerate() {
        for (i, &(cx, _)) in row.iter().enumerate() {
            let id = first_id[cy] + i;
            if let Some(&(next_cx, _)) = row.get(i + 1)
                && next_cx == cx + 1
            {
                sets.union(id, id + 1);
            }
        }
        // 8-neighbours in the next row: columns cx-1..=cx+1, found by a merge of the two
        // sorted rows.
        let Some(below) = rows.get(cy + 1) else {
            continue;
        };
        let mut j = 0;
        for (i, &(cx, _)) in row.iter().enumerate() {
            while j < below.len() && below[j].0 + 1 < cx {
                j += 1;
            }
            for (k, &(bx, _)) in below.iter().enumerate().skip(j) {
                if bx > cx + 1 {
                    break;
                }
                sets.union(first_id[cy] + i, first_id[cy + 1] + k);
            }
        }
    }

    let mut by_root: std::collections::HashMap<usize, Rect> = std::collections::HashMap::new();
    for (cy, row) in rows.iter().enumerate() {
        for (i, (_, rect)) in row.iter().enumerate() {
            by_root
                .entry(sets.find(first_id[cy] + i))
                .and_modify(|r| *r = r.union(rect))
                .or_insert(*rect);
        }
    }
    merge_near(by_root.into_values().collect(), MERGE_GAP)
}

/// Merges rectangles that overlap or are closer than `gap`, until none are; sorted output.
pub(crate) fn merge_near(mut rects: Vec<Rect>, gap: usize) -> Vec<Rect> {
    loop {
        rects.sort_by_key(|r| (r.y0, r.x0));
        let mut merged = false;
        let mut out: Vec<Rect> = Vec::with_capacity(rects.len());
        for rect in rects {
            // A linear scan: region counts are small (hundreds at worst on real screenshots).
            if let Some(hit) = out.iter_mut().find(|r| r.near(&rect, gap)) {
                *hit = hit.union(&rect);
                merged = true;
            } else {
                out.push(rect);
            }
        }
        rects = out;
        if !merged {
            return rects;
        }
    }
}

/// Union-find with path halving and union by size.
struct DisjointSets {
    parent: Vec<usize>,
    size: Vec<u32>,
}

impl DisjointSets {
    fn new(n: usize) -> Self {
        Self {
            parent: (0..n).collect(),
            size: vec![1; n],
        }
    }

    fn find(&mut self, mut i: usize) -> usize {
        while self.parent[i] != i {
            self.parent[i] = self.parent[self.parent[i]];
            i = self.parent[i];
        }
        i
    }

    fn union(&mut self, a: usize, b: usize) {
        let (mut a, mut b) = (self.find(a), self.find(b));
        if a == b {
            return;
        }
        if self.size[a] < self.size[b] {
            std::mem::swap(&mut a, &mut b);
        }
        self.parent[b] = a;
        self.size[a] += self.size[b];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pass::CLASS_SHIFT;

    fn plane_with(width: usize, height: usize, marks: &[(usize, usize)]) -> Plane {
        let mut bytes = vec![0u8; width * height];
        let mut marked_rows = vec![false; height];
        for &(x, y) in marks {
            bytes[y * width + x] = class::DIFF << CLASS_SHIFT;
            marked_rows[y] = true;
        }
        Plane {
            width,
            bytes,
            marked_rows,
        }
    }

    #[test]
    fn nearby_pixels_form_one_region_with_an_exact_box() {
        let plane = plane_with(100, 100, &[(10, 10), (14, 12), (20, 18)]);
        assert_eq!(
            cluster(&plane, 100, 100),
            vec![Rect {
                x0: 10,
                y0: 10,
                x1: 21,
                y1: 19
            }]
        );
    }

    #[test]
    fn distant_pixels_form_separate_regions_sorted_top_down() {
        let plane = plane_with(200, 200, &[(150, 5), (5, 150), (6, 151), (100, 100)]);
        let rects = cluster(&plane, 200, 200);
        assert_eq!(
            rects,
            vec![
                Rect {
                    x0: 150,
                    y0: 5,
                    x1: 151,
                    y1: 6
                },
                Rect {
                    x0: 100,
                    y0: 100,
                    x1: 101,
                    y1: 101
                },
                Rect {
                    x0: 5,
                    y0: 150,
                    x1: 7,
                    y1: 152
                },
            ]
        );
    }

    #[test]
    fn a_diagonal_line_is_one_region() {
        let marks: Vec<_> = (0..64).map(|i| (i, i)).collect();
        let plane = plane_with(64, 64, &marks);
        assert_eq!(
            cluster(&plane, 64, 64),
            vec![Rect {
                x0: 0,
                y0: 0,
                x1: 64,
                y1: 64
            }]
        );
    }

    #[test]
    fn overlapping_boxes_are_merged() {
        let rects = vec![
            Rect {
                x0: 0,
                y0: 0,
                x1: 50,
                y1: 10,
            },
            Rect {
                x0: 40,
                y0: 5,
                x1: 60,
                y1: 40,
            },
            Rect {
                x0: 62,
                y0: 39,
                x1: 70,
                y1: 45,
            },
            Rect {
                x0: 200,
                y0: 200,
                x1: 210,
                y1: 210,
            },
        ];
        assert_eq!(
            merge_near(rects, MERGE_GAP),
            vec![
                Rect {
                    x0: 0,
                    y0: 0,
                    x1: 70,
                    y1: 45
                },
                Rect {
                    x0: 200,
                    y0: 200,
                    x1: 210,
                    y1: 210
                }
            ]
        );
    }

    #[test]
    fn antialiasing_and_faint_pixels_do_not_make_regions() {
        let mut plane = plane_with(32, 32, &[]);
        plane.bytes[5] = class::AA << CLASS_SHIFT;
        plane.bytes[40] = class::FAINT << CLASS_SHIFT;
        plane.marked_rows = vec![true; 32];
        assert!(cluster(&plane, 32, 32).is_empty());
    }

    #[test]
    fn only_the_given_area_is_scanned() {
        let plane = plane_with(20, 20, &[(15, 15), (2, 2)]);
        assert_eq!(
            cluster(&plane, 10, 10),
            vec![Rect {
                x0: 2,
                y0: 2,
                x1: 3,
                y1: 3
            }]
        );
    }
}
