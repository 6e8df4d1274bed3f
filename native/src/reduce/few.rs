//! `Few<T>`: a list that holds its first item inline and allocates only from the second.
//!
//! Owns nothing but storage. Under a flood from random sources almost every window sees
//! one target from one address, so its target set, named sources and sample would each
//! be a one-item heap allocation; inline they cost none, which is most of the per-packet
//! time in that case (measured: malloc and free were ~40 % of it).

#[derive(Clone, Debug, Default)]
pub enum Few<T> {
    #[default]
    Empty,
    One(T),
    Many(Vec<T>),
}

impl<T: Copy> Few<T> {
    pub fn as_slice(&self) -> &[T] {
        match self {
            Few::Empty => &[],
            Few::One(t) => std::slice::from_ref(t),
            Few::Many(v) => v,
        }
    }

    pub fn as_mut_slice(&mut self) -> &mut [T] {
        match self {
            Few::Empty => &mut [],
            Few::One(t) => std::slice::from_mut(t),
            Few::Many(v) => v,
        }
    }

    pub fn len(&self) -> usize {
        self.as_slice().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Insert at `at` (0..=len). `limit` is the most items this list will ever hold: the
    /// heap buffer never grows past it (no doubling overshoot on capped lists).
    pub fn insert(&mut self, at: usize, item: T, limit: usize) {
        match self {
            Few::Empty => *self = Few::One(item),
            Few::One(first) => {
                let mut v = Vec::with_capacity(4.min(limit.max(2)));
                v.push(*first);
                v.insert(at.min(1), item);
                *self = Few::Many(v);
            }
            Few::Many(v) => {
                if v.len() == v.capacity() {
                    let want = (v.len() * 2).min(limit.max(v.len() + 1));
                    v.reserve_exact(want - v.len());
                }
                v.insert(at, item);
            }
        }
    }

    pub fn push(&mut self, item: T, limit: usize) {
        let at = self.len();
        self.insert(at, item, limit);
    }

    pub fn retain(&mut self, keep: impl FnMut(&T) -> bool) {
        match self {
            Few::Empty => {}
            Few::One(_) => {
                let mut keep = keep;
                if !keep(&self.as_slice()[0]) {
                    *self = Few::Empty;
                }
            }
            Few::Many(v) => v.retain(keep),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_then_heap_in_order() {
        let mut f: Few<u32> = Few::default();
        assert!(f.is_empty());
        f.push(5, 8);
        assert!(matches!(f, Few::One(5)));
        f.insert(0, 3, 8);
        f.push(9, 8);
        f.insert(2, 7, 8);
        assert_eq!(f.as_slice(), [3, 5, 7, 9]);
        f.retain(|&x| x > 4);
        assert_eq!(f.as_slice(), [5, 7, 9]);
        f.as_mut_slice()[0] = 6;
        assert_eq!(f.as_slice(), [6, 7, 9]);
        for i in 0..10 {
            f.push(i, 8);
        }
        assert_eq!(f.len(), 13);
        let mut one = Few::One(1u8);
        one.retain(|_| false);
        assert!(one.is_empty());
    }

    #[test]
    fn capped_lists_do_not_overshoot() {
        let mut f: Few<u64> = Few::default();
        for i in 0..65 {
            f.push(i, 65);
        }
        match &f {
            Few::Many(v) => assert_eq!(v.capacity(), 65),
            _ => unreachable!(),
        }
    }
}
