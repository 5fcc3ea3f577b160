use super::colour::*;
use super::figure::*;
use super::layout::*;
use super::*;

fn panel(title: &str, steps: usize, neurons: usize, value: impl Fn(usize, usize) -> f32) -> Panel {
    let values = (0..steps)
        .flat_map(|t| (0..neurons).map(move |n| (t, n)))
        .map(|(t, n)| value(t, n))
        .collect();
    Panel {
        title: title.to_string(),
        steps,
        neurons,
        values,
    }
}

/// The tutorial's shape, two layers: 2 steps × 5 neurons. Layer 0 holds its largest value
/// (0.9) at step 1, neuron 2 and its most negative (-0.8) at step 0, neuron 4; layer 1 is 0
/// at step 0, neuron 0.
fn tutorial() -> Vec<Panel> {
    let layer0 = [[0.1, -0.3, 0.5, 0.2, -0.8], [0.4, 0.0, 0.9, -0.6, 0.3]];
    let layer1 = [[0.0, 0.7, -0.2, 0.6, -0.5], [-0.1, 0.8, 0.3, -0.4, 0.2]];
    vec![
        panel("layer 0 forward", 2, 5, |t, n| layer0[t][n]),
        panel("layer 1 forward", 2, 5, |t, n| layer1[t][n]),
    ]
}

/// A decoded PNG: width, height and RGB pixels.
fn decode(bytes: &[u8]) -> (u32, u32, Vec<u8>) {
    let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    let mut reader = decoder.read_info().unwrap();
    let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut pixels).unwrap();
    assert_eq!(
        (info.color_type, info.bit_depth),
        (png::ColorType::Rgb, png::BitDepth::Eight)
    );
    (info.width, info.height, pixels)
}

fn pixel((width, _, pixels): &(u32, u32, Vec<u8>), x: u32, y: u32) -> Rgb {
    let i = (y as usize * *width as usize + x as usize) * 3;
    Rgb(pixels[i], pixels[i + 1], pixels[i + 2])
}

/// The middle of the cell that shows step `t`, neuron `n` of panel `p`.
fn cell_centre(layout: &Layout, p: usize, t: usize, n: usize) -> (u32, u32) {
    let l = &layout.panels[p];
    let column = (t / l.steps_per_column) as u32;
    let row = (n / l.neurons_per_row) as u32;
    (
        l.plot_x + column * l.cell_w + l.cell_w / 2,
        l.plot_y + row * l.cell_h + l.cell_h / 2,
    )
}

fn is_red(c: Rgb) -> bool {
    c.0 > 150 && c.1 < 80 && c.2 < 80
}

fn is_blue(c: Rgb) -> bool {
    c.2 > 150 && c.0 < 80 && c.1 < 130
}

fn svg_text(panels: &[Panel]) -> String {
    String::from_utf8(render(panels, ImageFormat::Svg).unwrap()).unwrap()
}

#[test]
fn png_has_the_dimensions_and_the_colours_of_the_values() {
    let panels = tutorial();
    let image = decode(&render(&panels, ImageFormat::Png).unwrap());
    let (width, height) = dimensions(&panels);
    assert_eq!((image.0, image.1), (width, height));

    let layout = Layout::new(&panels);
    let (x, y) = cell_centre(&layout, 0, 1, 2);
    assert_eq!(
        pixel(&image, x, y),
        DIVERGING[4],
        "+max|v| is the reddest red"
    );
    let (x, y) = cell_centre(&layout, 0, 0, 4);
    let c = pixel(&image, x, y);
    assert!(is_blue(c), "-0.8 of ±0.9 is blue, got {c:?}");
    let (x, y) = cell_centre(&layout, 1, 0, 0);
    assert_eq!(pixel(&image, x, y), DIVERGING[2], "0 is the middle white");
    // Neuron 0 is at the top: layer 1's neuron 1 (0.7, 0.8) is below neuron 0 (0.0, -0.1).
    let (x, y) = cell_centre(&layout, 1, 1, 1);
    assert!(is_red(pixel(&image, x, y)));

    let bar_x = layout.bar_x + BAR_W / 2;
    assert!(is_red(pixel(&image, bar_x, layout.bar_y)));
    assert!(is_blue(pixel(
        &image,
        bar_x,
        layout.bar_y + layout.bar_h - 1
    )));
}

#[test]
fn the_tutorial_shape_gets_large_cells_and_a_readable_figure() {
    let panels = tutorial();
    let layout = Layout::new(&panels);
    let l = &layout.panels[0];
    assert_eq!((l.cell_w, l.cell_h), (MAX_CELL, MAX_CELL));
    assert_eq!(l.x_ticks.iter().map(|t| t.1).collect::<Vec<_>>(), [0, 1]);
    assert_eq!(
        l.y_ticks.iter().map(|t| t.1).collect::<Vec<_>>(),
        [0, 1, 2, 3, 4]
    );
    let (width, height) = dimensions(&panels);
    assert!((300..=2400).contains(&width), "{width}");
    assert!(height < 1000, "{height}");
    // The second panel starts below everything of the first.
    assert!(layout.panels[1].plot_y - LINE - GAP > l.x_title_y() + LINE);
}

#[test]
fn svg_has_the_dimensions_the_titles_and_a_rect_per_cell() {
    let mut panels = tutorial();
    panels[1].title = r#"layer 1 <reverse> & "more""#.to_string();
    let svg = svg_text(&panels);
    let (width, height) = dimensions(&panels);
    assert!(svg.starts_with("<svg"));
    assert!(svg.contains(&format!(r#" width="{width}" height="{height}""#)));
    assert!(svg.trim_end().ends_with("</svg>"));
    assert!(svg.contains(">layer 0 forward</text>"));
    assert!(svg.contains(">layer 1 &lt;reverse&gt; &amp; &quot;more&quot;</text>"));
    assert!(!svg.contains("<reverse>"));
    assert!(svg.matches("<rect ").count() > 2 * 2 * 5);
    assert_eq!(svg.matches(r#" width="40" height="40""#).count(), 2 * 2 * 5);
    assert!(
        svg.contains(r##"fill="#b2182b""##),
        "the largest value in red"
    );
    for label in [">time step<", ">neuron<", ">0.9<", ">0<", ">-0.9<"] {
        assert!(svg.contains(label), "{label}");
    }
}

#[test]
fn renders_are_deterministic() {
    for format in [ImageFormat::Png, ImageFormat::Svg] {
        assert_eq!(
            render(&tutorial(), format).unwrap(),
            render(&tutorial(), format).unwrap()
        );
    }
}

#[test]
fn one_step_one_neuron() {
    let panels = [panel("tiny", 1, 1, |_, _| -0.25)];
    let image = decode(&render(&panels, ImageFormat::Png).unwrap());
    assert_eq!((image.0, image.1), dimensions(&panels));
    let (x, y) = cell_centre(&Layout::new(&panels), 0, 0, 0);
    assert_eq!(pixel(&image, x, y), DIVERGING[0]);
    assert!(svg_text(&panels).contains(">-0.25<"));
}

#[test]
fn all_zeros_are_white_on_a_scale_of_one() {
    let panels = [panel("zeros", 3, 4, |_, _| 0.0)];
    let image = decode(&render(&panels, ImageFormat::Png).unwrap());
    let (x, y) = cell_centre(&Layout::new(&panels), 0, 2, 3);
    assert_eq!(pixel(&image, x, y), DIVERGING[2]);
    let svg = svg_text(&panels);
    assert!(svg.contains(">1<") && svg.contains(">-1<"));
    assert!(!svg.contains("NaN") && !svg.contains("inf"));
}

#[test]
fn non_finite_values_are_grey_and_left_out_of_the_limits() {
    let specials = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY];
    let panels = [panel("specials", 4, 2, |t, n| match (t, n) {
        (0..=2, 0) => specials[t],
        (3, 1) => 0.5,
        _ => -0.25,
    })];
    let image = decode(&render(&panels, ImageFormat::Png).unwrap());
    let layout = Layout::new(&panels);
    for t in 0..3 {
        let (x, y) = cell_centre(&layout, 0, t, 0);
        assert_eq!(pixel(&image, x, y), NON_FINITE, "step {t}");
    }
    let (x, y) = cell_centre(&layout, 0, 3, 1);
    assert_eq!(pixel(&image, x, y), DIVERGING[4], "0.5 is the limit");
    let legend = pixel(&image, layout.bar_x + BAR_W / 2, layout.legend_y + CAP / 2);
    assert_eq!(legend, NON_FINITE);
    let svg = svg_text(&panels);
    assert!(svg.contains(">0.5<") && svg.contains(">-0.5<"));
    assert!(svg.contains(">NaN/Inf<"));
    assert!(
        !svg_text(&tutorial()).contains("NaN/Inf"),
        "only when there are any"
    );
}

#[test]
fn many_steps_are_averaged_into_columns_within_the_size_cap() {
    let panels = [
        panel("layer 0 forward", 5000, 64, |t, n| {
            ((t + n) as f32 * 0.01).sin()
        }),
        panel("layer 0 reverse", 5000, 64, |t, n| {
            ((t * n) as f32 * 0.01).cos()
        }),
    ];
    let (width, height) = dimensions(&panels);
    assert!(width <= 2400, "{width}");
    assert!(height <= 2 * 1200, "{height}");
    let layout = Layout::new(&panels);
    assert_eq!(layout.panels[0].steps_per_column, 3);
    assert!(layout.panels[0].columns <= MAX_COLUMNS);
    assert!(layout.panels[0].x_ticks.len() <= MAX_TICKS);
    let image = decode(&render(&panels, ImageFormat::Png).unwrap());
    assert_eq!((image.0, image.1), (width, height));
    assert!(svg_text(&panels).contains(">layer 0 forward (3 steps per column)</text>"));
}

#[test]
fn grouped_cells_are_averages_and_a_nan_in_a_group_shows() {
    // 4000 steps → 2 per column: +1 and -1 average to 0, white, not blue or red.
    let mut alternating = panel(
        "alternating",
        4000,
        1,
        |t, _| if t % 2 == 0 { 1.0 } else { -1.0 },
    );
    alternating.values[1001] = f32::NAN;
    let panels = [alternating];
    let image = decode(&render(&panels, ImageFormat::Png).unwrap());
    let layout = Layout::new(&panels);
    assert_eq!(layout.panels[0].steps_per_column, 2);
    let (x, y) = cell_centre(&layout, 0, 10, 0);
    assert_eq!(pixel(&image, x, y), DIVERGING[2]);
    let (x, y) = cell_centre(&layout, 0, 1000, 0);
    assert_eq!(pixel(&image, x, y), NON_FINITE);
}

#[test]
fn typical_and_huge_shapes_stay_within_the_caps() {
    for (steps, neurons, layers) in [
        (2, 5, 1),
        (1000, 256, 4),
        (100_000, 4096, 2),
        (1, 100_000, 1),
    ] {
        let panels: Vec<Panel> = (0..layers)
            .map(|_| Panel {
                title: "layer".to_string(),
                steps,
                neurons,
                values: Vec::new(),
            })
            .collect();
        let (width, height) = dimensions(&panels);
        assert!(
            (300..=2400).contains(&width),
            "{steps} × {neurons}: {width}"
        );
        let panel_height = (height - 2 * MARGIN) / layers;
        assert!(panel_height < 1200, "{steps} × {neurons}: {height}");
        for l in Layout::new(&panels).panels {
            assert!(l.columns <= MAX_COLUMNS && l.rows <= MAX_ROWS);
            assert!((1..=MAX_CELL).contains(&l.cell_w) && (1..=MAX_CELL).contains(&l.cell_h));
        }
    }
    assert!(dimensions(&[]).0 > 0);
}

#[test]
fn values_of_the_wrong_length_are_an_error() {
    let mut panels = tutorial();
    panels[1].values.pop();
    for format in [ImageFormat::Png, ImageFormat::Svg] {
        let e = render(&panels, format).unwrap_err().to_string();
        assert_eq!(
            e,
            "panel \"layer 1 forward\": 9 values, expected steps × neurons = 2 × 5 = 10"
        );
    }
}

#[test]
fn empty_plots_are_an_error() {
    let e = render(&[], ImageFormat::Png).unwrap_err().to_string();
    assert_eq!(e, "nothing to plot: no panels");
    let e = render(&[panel("none", 0, 5, |_, _| 0.0)], ImageFormat::Svg)
        .unwrap_err()
        .to_string();
    assert_eq!(e, "panel \"none\": nothing to plot (0 steps × 5 neurons)");
}

#[test]
fn format_from_the_extension() {
    let format = |p: &str| ImageFormat::from_path(Path::new(p));
    assert_eq!(format("states.png"), Some(ImageFormat::Png));
    assert_eq!(format("out/States.SVG"), Some(ImageFormat::Svg));
    assert_eq!(format("states.jpg"), None);
    assert_eq!(format("png"), None);
    assert_eq!(format("states"), None);
}

#[test]
fn colour_bar_labels_are_short() {
    for (value, label) in [
        (0.0, "0"),
        (1.0, "1"),
        (-0.9, "-0.9"),
        (0.99999, "1"),
        (0.123456, "0.123"),
        (-0.0123456, "-0.0123"),
        (12.5, "12.5"),
        (999.96, "1000"),
        (0.00123, "1.2e-3"),
        (-1.5e-10, "-1.5e-10"),
        (3.4e38, "3.4e38"),
    ] {
        assert_eq!(format_value(value), label);
        assert!(label.len() <= BAR_LABEL_CHARS);
    }
}

#[test]
fn ticks_are_round_numbers_apart() {
    assert_eq!(ticks(2, 40.0, 36.0), [0, 1]);
    assert_eq!(ticks(5, 40.0, 22.0), [0, 1, 2, 3, 4]);
    assert_eq!(ticks(20, 25.0, 22.0), [0, 2, 4, 6, 8, 10, 12, 14, 16, 18]);
    assert_eq!(
        ticks(1000, 1.0, 60.0),
        (0..10).map(|i| i * 100).collect::<Vec<_>>()
    );
    // Every 20 would be 13 ticks.
    assert_eq!(ticks(256, 2.0, 22.0), [0, 50, 100, 150, 200, 250]);
    assert!(ticks(0, 1.0, 10.0).is_empty());
}

#[test]
fn colours_run_from_blue_through_white_to_red() {
    assert_eq!(colour(-2.0, 1.0), DIVERGING[0]);
    assert_eq!(colour(-1.0, 1.0), DIVERGING[0]);
    assert_eq!(colour(-0.5, 1.0), DIVERGING[1]);
    assert_eq!(colour(0.0, 1.0), DIVERGING[2]);
    assert_eq!(colour(0.25, 1.0), Rgb(243, 193, 173));
    assert_eq!(colour(1.0, 1.0), DIVERGING[4]);
    assert_eq!(colour(f64::NAN, 1.0), NON_FINITE);
}

#[test]
fn the_font_draws_what_the_labels_need() {
    let needed = ('a'..='z')
        .chain('A'..='Z')
        .chain('0'..='9')
        .chain("-.e+ ():/".chars());
    for c in needed {
        assert!(font::GLYPHS.iter().any(|g| g.0 == c), "no glyph for {c:?}");
    }
    let mut seen = std::collections::HashMap::new();
    for &(c, art) in font::GLYPHS {
        let rows: Vec<&str> = art.split(' ').collect();
        assert!(
            rows.len() == font::CAP as usize || rows.len() == font::HEIGHT as usize,
            "{c:?} has {} rows",
            rows.len()
        );
        for row in &rows {
            assert!(
                row.len() == font::WIDTH as usize && row.chars().all(|p| p == '#' || p == '.'),
                "{c:?}: {row:?}"
            );
        }
        assert_eq!(c == ' ', !art.contains('#'), "{c:?}");
        if let Some(other) = seen.insert(font::rows(c), c) {
            panic!("{c:?} and {other:?} look the same");
        }
    }
    let characters: std::collections::HashSet<char> = font::GLYPHS.iter().map(|g| g.0).collect();
    assert_eq!(characters.len(), font::GLYPHS.len(), "a character twice");
    assert_eq!(font::rows('1')[0], 0b00100);
    assert_eq!(
        font::rows('\u{263a}'),
        font::rows('\u{2603}'),
        "a box for the rest"
    );
}
