; Replace flat tyres: open the boot, fetch tools, loosen nuts, jack up, swap and inflate.
; Written for acbench after the IPC-1 tyreworld domain.
(define (domain tyreworld)
  (:requirements :strips :typing :negative-preconditions)
  (:types tool wheel nut - item container hub)
  (:predicates (open ?c - container) (closed ?c - container) (in ?x ?c - container)
               (have ?x) (intact ?w - wheel) (inflated ?w - wheel) (not-inflated ?w - wheel)
               (loose ?n - nut ?h - hub) (tight ?n - nut ?h - hub) (on-ground ?h - hub)
               (lifted ?h - hub) (on ?w - wheel ?h - hub) (free ?h - hub) (fastened ?h - hub)
               (unfastened ?h - hub) (jack ?t - tool) (wrench ?t - tool) (pump ?t - tool))
  (:action open
    :parameters (?c - container)
    :precondition (closed ?c)
    :effect (and (open ?c) (not (closed ?c))))
  (:action close
    :parameters (?c - container)
    :precondition (open ?c)
    :effect (and (closed ?c) (not (open ?c))))
  (:action fetch
    :parameters (?x - item ?c - container)
    :precondition (and (in ?x ?c) (open ?c))
    :effect (and (have ?x) (not (in ?x ?c))))
  (:action put-away
    :parameters (?x - item ?c - container)
    :precondition (and (have ?x) (open ?c))
    :effect (and (in ?x ?c) (not (have ?x))))
  (:action loosen
    :parameters (?n - nut ?h - hub ?t - tool)
    :precondition (and (wrench ?t) (have ?t) (tight ?n ?h) (on-ground ?h))
    :effect (and (loose ?n ?h) (not (tight ?n ?h))))
  (:action tighten
    :parameters (?n - nut ?h - hub ?t - tool)
    :precondition (and (wrench ?t) (have ?t) (loose ?n ?h) (on-ground ?h))
    :effect (and (tight ?n ?h) (not (loose ?n ?h))))
  (:action jack-up
    :parameters (?h - hub ?t - tool)
    :precondition (and (jack ?t) (have ?t) (on-ground ?h))
    :effect (and (lifted ?h) (not (on-ground ?h)) (not (have ?t))))
  (:action jack-down
    :parameters (?h - hub ?t - tool)
    :precondition (and (jack ?t) (lifted ?h))
    :effect (and (on-ground ?h) (not (lifted ?h)) (have ?t)))
  (:action undo
    :parameters (?n - nut ?h - hub ?t - tool)
    :precondition (and (wrench ?t) (have ?t) (lifted ?h) (fastened ?h) (loose ?n ?h))
    :effect (and (have ?n) (unfastened ?h) (not (fastened ?h)) (not (loose ?n ?h))))
  (:action do-up
    :parameters (?n - nut ?h - hub ?t - tool)
    :precondition (and (wrench ?t) (have ?t) (lifted ?h) (unfastened ?h) (have ?n))
    :effect (and (loose ?n ?h) (fastened ?h) (not (unfastened ?h)) (not (have ?n))))
  (:action remove-wheel
    :parameters (?w - wheel ?h - hub)
    :precondition (and (lifted ?h) (on ?w ?h) (unfastened ?h))
    :effect (and (have ?w) (free ?h) (not (on ?w ?h))))
  (:action put-on-wheel
    :parameters (?w - wheel ?h - hub)
    :precondition (and (have ?w) (free ?h) (lifted ?h) (unfastened ?h))
    :effect (and (on ?w ?h) (not (free ?h)) (not (have ?w))))
  (:action inflate
    :parameters (?w - wheel ?t - tool)
    :precondition (and (pump ?t) (have ?t) (not-inflated ?w) (intact ?w))
    :effect (and (inflated ?w) (not (not-inflated ?w)))))
